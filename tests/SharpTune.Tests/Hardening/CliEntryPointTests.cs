using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hardening;

/// <summary>Clear errors (or correct behaviour) at the CLI's entry points for inputs that used to end in raw .NET or
/// libtorch text: out-of-vocabulary prompt ids, too-long prompts, NaN model outputs, blank or non-object JSONL lines.</summary>
public sealed class CliEntryPointTests : IDisposable
{
    private readonly string _root = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly string Stories = Path.Combine(RepoPaths.Models, "stories260K");

    [Fact]
    public void GenerateRefusesPromptIdsOutsideTheVocabularyAndTooLongPrompts()
    {
        var outside = CliRunner.Run("generate", "--model", Stories, "--prompt-ids", "1,99999", "--max-new-tokens", "2");
        Assert.Equal(2, outside.ExitCode);
        Assert.Equal("error: prompt token id 99999 is outside the model's vocabulary (ids 0 to 511)", outside.StdErr.Trim());

        var tooLong = CliRunner.Run("generate", "--model", Stories, "--prompt-ids", string.Join(',', Enumerable.Repeat(1, 600)), "--max-new-tokens", "2");
        Assert.Equal(2, tooLong.ExitCode);
        Assert.Contains("exceed the model's 512 positions", tooLong.StdErr);
        Assert.DoesNotContain("   at ", tooLong.All);
    }

    [Fact]
    public void PredictWritesNaNScoresAsJsonStringsAndWarns()
    {
        var model = Path.Combine(_root, "nan-bert");
        var config = PretrainedConfig.FromFile(RepoPaths.Fixture("models", "bert-seqcls", "config.json"));
        config.Set("vocab_size", 2000);
        using (var classifier = AutoModel.FromConfig(config, ModelTask.SequenceClassification))
        {
            classifier.InitializeWeights();
            using (TorchSharp.torch.no_grad())
                classifier.named_parameters().Single(p => p.name == "classifier.bias").parameter.fill_(double.NaN);
            classifier.SavePretrained(model);
        }
        File.Copy(RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"), Path.Combine(model, "tokenizer.json"));
        var output = Path.Combine(_root, "scores.jsonl");

        var result = CliRunner.Run("predict", "--model", model, "--task", "text-classification", "--text", "hello world", "--output", output);

        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("warning: 1 result(s) hold NaN or infinite scores", result.StdErr);
        var labels = JsonNode.Parse(File.ReadAllLines(output).Single())!["labels"]!.AsArray();
        Assert.Equal("NaN", labels[0]!["score"]!.GetValue<string>());
        // Standard JSON, read back as NaN by .NET (and by pandas as the float nan after to_numeric).
        Assert.True(double.IsNaN(JsonSerializer.Deserialize<double>(labels[0]!["score"]!.ToJsonString(),
            new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })));
    }

    [Fact]
    public void TokenizeRefusesBlankAndNonObjectLinesNamingTheLine()
    {
        var tokenizer = RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json");
        var blank = Path.Combine(_root, "blank.jsonl");
        File.WriteAllText(blank, "{\"text\":\"a\"}\n\n{\"text\":\"b\"}\n");
        var result = CliRunner.Run("tokenize", "--tokenizer", tokenizer, "--input", blank, "--output", Path.Combine(_root, "out.jsonl"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("blank.jsonl:2: blank line", result.StdErr);

        var array = Path.Combine(_root, "array.jsonl");
        File.WriteAllText(array, "{\"text\":\"a\"}\n[\"b\"]\n");
        result = CliRunner.Run("tokenize", "--tokenizer", tokenizer, "--input", array, "--output", Path.Combine(_root, "out.jsonl"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: " + array + ":2: expected an object with a string \"text\", found a JSON array", result.StdErr.Trim());
        Assert.False(File.Exists(Path.Combine(_root, "out.jsonl")));

        // Trailing blank lines end the file; they shift nothing.
        var trailing = Path.Combine(_root, "trailing.jsonl");
        File.WriteAllText(trailing, "{\"text\":\"a\"}\n{\"text\":\"b\"}\n\n\n");
        result = CliRunner.Run("tokenize", "--tokenizer", tokenizer, "--input", trailing, "--output", Path.Combine(_root, "out.jsonl"));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(_root, "out.jsonl")).Length);
    }

    [Fact]
    public void PipelineRefusesMoreTrainSamplesThanTheDataHolds()
    {
        var data = Path.Combine(_root, "ten.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 10).Select(i => JsonSerializer.Serialize(new { prompt = $"question {i}", answer = $"answer {i}" })));
        var output = Path.Combine(_root, "pipeline");
        var result = CliRunner.Run("pipeline", "--model", Stories, "--data", data, "--output", output, "--train-samples", "20", "--held-out-samples", "5");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal($"error: --train-samples 20 and --held-out-samples 5 need 25 records; {data} has 10", result.StdErr.Trim());
        Assert.False(Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any());
    }

    [Fact]
    public void PredictToStandardOutputKeepsTheTableOnStandardError()
    {
        var result = CliRunner.Run("predict", "--model", Path.Combine(RepoPaths.Models, "mini-bert"), "--task", "fill-mask",
            "--text", "a [MASK] day", "--text", "the [MASK] end", "--output", "-");
        Assert.True(result.ExitCode == 0, result.All);
        var lines = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.All(lines, line => Assert.NotNull(JsonNode.Parse(line)!["masks"]));
        Assert.Contains("fills", result.StdErr);
        Assert.False(File.Exists(Path.Combine(RepoPaths.Root, "-")));
    }

    [Fact]
    public void TokenizeAndPretrainRefuseInvalidUtf8NamingTheLine()
    {
        var input = Path.Combine(_root, "in.jsonl");
        File.WriteAllBytes(input, [.. "{\"text\":\"ok\"}\n{\"text\":\"bad "u8.ToArray(), 0xFF, .. "\"}\n"u8.ToArray()]);
        var result = CliRunner.Run("tokenize", "--tokenizer", RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"),
            "--input", input, "--output", Path.Combine(_root, "out.jsonl"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"error: {input}:2: not valid UTF-8 (byte offset 27); save the file as UTF-8", result.StdErr.Trim());

        var text = Path.Combine(_root, "train.txt");
        File.WriteAllBytes(text, [.. "one story\ntwo stories\nthree "u8.ToArray(), 0xC3, 0x28, .. "\n"u8.ToArray()]);
        result = CliRunner.Run("pretrain", "--objective", "clm", "--config", Stories, "--train", text, "--output", Path.Combine(_root, "pt"));
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith($"error: {text}:3: not valid UTF-8", result.StdErr.Trim());
        Assert.False(Directory.Exists(Path.Combine(_root, "pt")));
    }
}
