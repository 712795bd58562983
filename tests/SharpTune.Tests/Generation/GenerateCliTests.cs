using System.Text.Json;
using SharpTune.Generation;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Generation;

public class GenerateCliTests
{
    [Fact]
    public void GenerateWritesIdsTextAndSpeedToOutputJson()
    {
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var reference = GenerationTests.LoadStoriesReference()[1];
            var path = Path.Combine(directory, "out.json");
            var result = CliRunner.Run("generate", "--model", Path.Combine(RepoPaths.Models, "stories260K"), "--prompt", reference.Prompt,
                "--max-new-tokens", "30", "--greedy", "--output", path, "--device", "cpu", "--threads", "1");
            Assert.True(result.ExitCode == 0, result.All);
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var ids = json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Assert.Equal(reference.GreedyIds.Take(reference.PromptIds.Length + 30), ids);
            var text = json.RootElement.GetProperty("text").GetString()!;
            Assert.StartsWith("Once upon a time, there was a little girl named Lily.", text);
            Assert.True(json.RootElement.GetProperty("tokens_per_second").GetDouble() > 0);
            // The generated text was printed as it was produced.
            Assert.Contains(json.RootElement.GetProperty("generated_text").GetString()!, result.StdOut);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void GenerateWithPromptIdsSamplesReproduciblyWithASeed()
    {
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            string[] Run(string seed, string file)
            {
                var path = Path.Combine(directory, file);
                var result = CliRunner.Run("generate", "--model", Path.Combine(RepoPaths.Models, "stories260K"), "--prompt-ids", "1,403,407",
                    "--max-new-tokens", "25", "--temperature", "1.0", "--top-k", "20", "--seed", seed, "--output", path, "--device", "cpu", "--threads", "1");
                Assert.True(result.ExitCode == 0, result.All);
                using var json = JsonDocument.Parse(File.ReadAllText(path));
                return json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt64().ToString()).ToArray();
            }
            var first = Run("11", "a.json");
            Assert.Equal(28, first.Length);
            Assert.Equal(first, Run("11", "b.json"));
            Assert.NotEqual(first, Run("12", "c.json"));
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void GenerateFormatsAlpacaInstructionsAndGenerates20TokensByDefault()
    {
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var model = Path.Combine(RepoPaths.Models, "stories260K");
            var path = Path.Combine(directory, "out.json");
            var result = CliRunner.Run("generate", "--model", model, "--prompt", "Write a story about a dog.", "--template", "alpaca",
                "--output", path, "--device", "cpu", "--threads", "1");
            Assert.True(result.ExitCode == 0, result.All);
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var expectedPrompt = PromptTokenizer.FromPretrained(model).Encode(AlpacaTemplate.Format("Write a story about a dog."));
            var ids = json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt64()).ToList();
            Assert.Equal(expectedPrompt, ids.Take(expectedPrompt.Count));
            Assert.Equal(20, json.RootElement.GetProperty("new_tokens").GetInt32());
            Assert.StartsWith(AlpacaTemplate.Format("Write a story about a dog."), json.RootElement.GetProperty("text").GetString());
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void GenerateRejectsConflictingOptions()
    {
        var model = Path.Combine(RepoPaths.Models, "stories260K");
        var both = CliRunner.Run("generate", "--model", model, "--prompt", "a", "--prompt-ids", "1");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("exactly one of --prompt", both.StdErr);
        var greedySampling = CliRunner.Run("generate", "--model", model, "--prompt", "a", "--greedy", "--temperature", "0.7");
        Assert.Equal(2, greedySampling.ExitCode);
        var chat = CliRunner.Run("generate", "--model", model, "--prompt", "a", "--template", "chat");
        Assert.Equal(2, chat.ExitCode);
        Assert.Contains("no chat_template", chat.StdErr);
        var missing = CliRunner.Run("generate", "--model", Path.Combine(model, "nope"), "--prompt-ids", "1");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("nope", missing.StdErr);
    }
}

public class ConvertLlama2cCliTests
{
    [Fact]
    public void ConvertFromLlama2cProducesAModelThatGeneratesTheReference()
    {
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var llama2c = Path.Combine(RepoPaths.Models, "stories260K", "llama2c");
            var model = Path.Combine(directory, "stories");
            var convert = CliRunner.Run("convert", "--from", "llama2c", "--model", Path.Combine(llama2c, "stories260K.bin"),
                "--tokenizer", Path.Combine(llama2c, "tok512.bin"), "--output", model);
            Assert.True(convert.ExitCode == 0, convert.All);
            Assert.Contains("5 layers", convert.StdOut);

            var reference = GenerationTests.LoadStoriesReference()[2];
            var path = Path.Combine(directory, "out.json");
            var generate = CliRunner.Run("generate", "--model", model, "--prompt", reference.Prompt,
                "--max-new-tokens", $"{reference.GreedyIds.Length - reference.PromptIds.Length}", "--output", path, "--device", "cpu", "--threads", "1");
            Assert.True(generate.ExitCode == 0, generate.All);
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            Assert.Equal(reference.GreedyIds, json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt64()));

            var again = CliRunner.Run("convert", "--from", "llama2c", "--model", Path.Combine(llama2c, "stories260K.bin"),
                "--tokenizer", Path.Combine(llama2c, "tok512.bin"), "--output", model);
            Assert.Equal(2, again.ExitCode);
            Assert.Contains("not empty", again.StdErr);
            var noTokenizer = CliRunner.Run("convert", "--from", "llama2c", "--model", Path.Combine(llama2c, "stories260K.bin"), "--output", Path.Combine(directory, "x"));
            Assert.Equal(2, noTokenizer.ExitCode);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }
}
