using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Models;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Cli;

/// <summary><c>sharptune forward</c> and <c>sharptune convert</c> run as a user runs them.</summary>
public sealed class ForwardConvertCliTests : IDisposable
{
    private readonly string _directory = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>The fixture's inputs (input_ids + attention_mask) as a forward input file.</summary>
    private string WriteInputs(string fixture)
    {
        var path = Path.Combine(_directory, $"{fixture}-in.safetensors");
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            SafeTensorsWriter.Save(path, [new("input_ids", reference["input_ids"]), new("attention_mask", reference["attention_mask"])]);
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
        return path;
    }

    [Theory]
    [InlineData("bert-base-model")]
    [InlineData("deberta-v2-seqcls")]
    public void ForwardWritesFloat32OutputsMatchingTransformers(string fixture)
    {
        var output = Path.Combine(_directory, "out.safetensors");
        var result = CliRunner.Run("forward", "--model", EncoderFixture.Directory(fixture), "--input", WriteInputs(fixture),
            "--output", output, "--device", "cpu");
        Assert.True(result.ExitCode == 0, result.All);
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            using var written = SafeTensorsFile.Open(output);
            var expected = new[] { "logits", "last_hidden_state", "hidden_states_first" }.Where(reference.ContainsKey).ToList();
            Assert.All(expected, name => Assert.True(written.Contains(name), $"{name} missing from the output"));
            Assert.All(written.Names, name => Assert.Equal("F32", written.Info(name).DType));
            foreach (var name in expected)
            {
                using var tensor = written.Load(name);
                Assert.True(EncoderFixture.MaxAbsError(tensor, reference[name]) <= 1e-4, $"{fixture} {name} differs from transformers");
            }
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
    }

    [Fact]
    public void ForwardWithAMissingInputFileIsAOneLineUsageError()
    {
        var missing = Path.Combine(_directory, "nope.safetensors");
        var result = CliRunner.Run("forward", "--model", EncoderFixture.Directory("bert-seqcls"), "--input", missing,
            "--output", Path.Combine(_directory, "out.safetensors"));
        Assert.Equal(2, result.ExitCode);
        Assert.Single(result.StdErr.Trim().Split('\n'));
        Assert.Contains(missing, result.StdErr);
        Assert.False(File.Exists(Path.Combine(_directory, "out.safetensors")));
    }

    [Fact]
    public void ForwardWithADirectoryThatIsNoAdapterNamesTheMissingConfig()
    {
        var result = CliRunner.Run("forward", "--model", EncoderFixture.Directory("bert-seqcls"), "--input", WriteInputs("bert-seqcls"),
            "--output", Path.Combine(_directory, "out.safetensors"), "--adapter", _directory);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("adapter_config.json", result.StdErr);
        Assert.False(File.Exists(Path.Combine(_directory, "out.safetensors")));
    }

    [Fact]
    public void ConvertToBFloat16KeepsTokenizerFilesAndReloads()
    {
        var source = Path.Combine(_directory, "source");
        Directory.CreateDirectory(source);
        foreach (var file in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(EncoderFixture.Directory("bert-mlm"), file), Path.Combine(source, file));
        File.WriteAllText(Path.Combine(source, "tokenizer.json"), "{\"version\": \"1.0\"}");
        var output = Path.Combine(_directory, "bf16");

        var result = CliRunner.Run("convert", "--model", source, "--output", output, "--dtype", "bfloat16");
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Equal(File.ReadAllText(Path.Combine(source, "tokenizer.json")), File.ReadAllText(Path.Combine(output, "tokenizer.json")));
        Assert.Equal("bfloat16", PretrainedConfig.FromDirectory(output).DType);
        using (var checkpoint = Checkpoint.Open(output))
            Assert.All(checkpoint.Names, name => Assert.Equal("BF16", checkpoint.Info(name).DType));
        Assert.True(new FileInfo(Path.Combine(output, "model.safetensors")).Length < new FileInfo(Path.Combine(source, "model.safetensors")).Length * 0.6);
        using var model = AutoModel.FromPretrained(output);
        Assert.IsType<BertForMaskedLM>(model);

        // A second run into the same, now non-empty, directory is refused.
        var again = CliRunner.Run("convert", "--model", source, "--output", output, "--dtype", "bfloat16");
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("--force", again.StdErr);
    }

    [Fact]
    public void FailedConvertLeavesNoPartialDirectory()
    {
        var source = Path.Combine(_directory, "broken");
        Directory.CreateDirectory(source);
        File.Copy(Path.Combine(EncoderFixture.Directory("bert-mlm"), "config.json"), Path.Combine(source, "config.json"));
        var weights = File.ReadAllBytes(Path.Combine(EncoderFixture.Directory("bert-mlm"), "model.safetensors"));
        File.WriteAllBytes(Path.Combine(source, "model.safetensors"), weights[..(weights.Length / 2)]);
        var output = Path.Combine(_directory, "out");

        var result = CliRunner.Run("convert", "--model", source, "--output", output, "--dtype", "bfloat16");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("model.safetensors", result.StdErr);
        Assert.False(Directory.Exists(output));
        Assert.Equal(["broken"], Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName));
    }

    [Fact]
    public void ConvertMiniBertToShardedFloat32ReloadsIdentically()
    {
        var source = Path.Combine(RepoPaths.Models, "mini-bert");
        var output = Path.Combine(_directory, "mini-bert-fp32");
        var result = CliRunner.Run("convert", "--model", source, "--output", output, "--dtype", "float32", "--max-shard-mb", "16");
        Assert.True(result.ExitCode == 0, result.All);
        Assert.True(File.Exists(Path.Combine(output, Checkpoint.IndexFile)));
        Assert.True(Directory.GetFiles(output, "model-*-of-*.safetensors").Length >= 3, "44 MB of fp32 weights in 16 MB shards");
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));

        using var scope = NewDisposeScope();
        using var original = AutoModel.FromPretrained(source, dtype: ScalarType.Float32);
        using var sharded = AutoModel.FromPretrained(output, out var report);
        Assert.Empty(report.Missing);
        var inputs = new ModelInputs(tensor(new long[] { 101, 1996, 3185, 2001, 103, 1012, 102 }, [1, 7]));
        using var expected = original.Forward(inputs);
        using var actual = sharded.Forward(inputs);
        Assert.True(expected.Logits!.eq(actual.Logits!).all().item<bool>(), "bf16 → fp32 is exact, so outputs must be identical");
    }
}
