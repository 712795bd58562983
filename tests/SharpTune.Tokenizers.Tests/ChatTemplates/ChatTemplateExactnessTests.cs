using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers.ChatTemplates;

namespace SharpTune.Tokenizers.Tests.ChatTemplates;

/// <summary>Skips only where node is not installed (the reference renderer is Hugging Face's JS Jinja).</summary>
public sealed class RequiresNodeFactAttribute : FactAttribute
{
    public RequiresNodeFactAttribute()
    {
        if (!NodeRenderer.NodeAvailable)
            Skip = "node is not installed: the chat-template exactness test compares with @huggingface/jinja (install node, then run scripts/setup.sh)";
    }
}

/// <summary>Runs tools/chat-templates/render.mjs (@huggingface/jinja, pinned) on a batch of templates and conversations.</summary>
internal static class NodeRenderer
{
    public static bool NodeAvailable { get; } = Probe();

    private static bool Probe()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true, RedirectStandardError = true });
            process!.WaitForExit(10_000);
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    public static JsonObject Render(JsonObject input)
    {
        var tool = TestPaths.Repo("tools", "chat-templates");
        if (!Directory.Exists(Path.Combine(tool, "node_modules", "@huggingface", "jinja")))
            throw new FileNotFoundException("@huggingface/jinja is not installed: run scripts/setup.sh (npm ci in tools/chat-templates)");
        var start = new ProcessStartInfo("node", "render.mjs")
        {
            WorkingDirectory = tool,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(input.ToJsonString());
        process.StandardInput.Close();
        process.WaitForExit(120_000);
        Assert.True(process.ExitCode == 0, $"render.mjs failed: {stderr.Result}");
        return JsonNode.Parse(stdout.Result)!.AsObject();
    }
}

public class ChatTemplateExactnessTests
{
    private static readonly string[] Templates =
        ["llama3", "llama3.1", "llama3.2", "qwen2.5", "qwen3", "gemma3", "phi3.5", "phi4", "mistral-7b-v0.3", "mistral-nemo", "deepseek-v3", "deepseek-r1-distill-qwen"];

    [RequiresNodeFact]
    public void RenderingsEqualHuggingFaceJinjaOnRealTemplates()
    {
        var cases = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("chat-templates", "conversations.json")))!.AsArray();
        var templates = new JsonObject();
        foreach (var name in Templates)
            templates[name] = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("chat-templates", name + ".json")));
        var reference = NodeRenderer.Render(new JsonObject { ["templates"] = templates.DeepClone(), ["cases"] = cases.DeepClone() });

        var failures = new List<string>();
        foreach (var name in Templates)
        {
            var spec = templates[name]!.AsObject();
            var template = new ChatTemplate(spec["chat_template"]!.GetValue<string>(),
                new SpecialTokens { Bos = spec["bos_token"]?.GetValue<string>(), Eos = spec["eos_token"]?.GetValue<string>() });
            var rendered = 0;
            for (var i = 0; i < cases.Count; i++)
            {
                var c = cases[i]!.AsObject();
                var expected = reference[name]![i]!.AsObject();
                string? text = null, error = null;
                try
                {
                    text = template.ApplyChatTemplate(c["messages"]!.AsArray(), new ChatTemplateOptions
                    {
                        AddGenerationPrompt = c["add_generation_prompt"]?.GetValue<bool>() ?? false,
                        Tools = c["tools"]?.AsArray(),
                        Variables = c["variables"]?.AsObject().ToDictionary(p => p.Key, p => p.Value),
                    });
                }
                catch (TemplateRaisedException e)
                {
                    error = e.Message;
                }
                if (expected["text"] is { } expectedText)
                {
                    if (text != expectedText.GetValue<string>())
                        failures.Add($"{name} case {i}: expected\n{expectedText.GetValue<string>()}\n--- got ---\n{text ?? "error: " + error}");
                    else
                        rendered++;
                }
                else if (text is not null)
                    failures.Add($"{name} case {i}: @huggingface/jinja raised '{expected["error"]}' but SharpTune rendered\n{text}");
            }
            if (rendered < 30)
                failures.Add($"{name}: only {rendered} conversations rendered (need >= 30)");
        }
        Assert.True(failures.Count == 0, string.Join("\n=====\n", failures.Take(8)) + $"\n({failures.Count} failures)");
    }
}
