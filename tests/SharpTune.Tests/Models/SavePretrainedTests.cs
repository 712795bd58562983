using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Models saved by SharpTune reload to identical outputs with transformers' file layout and names.</summary>
public class SavePretrainedTests
{
    [Theory]
    [InlineData("bert-mlm")]
    [InlineData("roberta-seqcls")]
    [InlineData("distilbert-seqcls")]
    [InlineData("deberta-v2-seqcls")]
    public void ShardedSaveReloadsToIdenticalOutputsWithTransformersKeys(string fixture)
    {
        var directory = RepoPaths.NewTempDirectory();
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            using var original = AutoModel.FromPretrained(EncoderFixture.Directory(fixture));
            original.SavePretrained(directory, maxShardBytes: 40_000);

            // Sharded like transformers: an index naming every tensor, each shard present.
            Assert.False(File.Exists(Path.Combine(directory, Checkpoint.SingleFile)));
            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, Checkpoint.IndexFile)))!;
            var shards = index["weight_map"]!.AsObject().Select(kv => kv.Value!.GetValue<string>()).Distinct().ToList();
            Assert.True(shards.Count > 1, "a 40 kB shard limit must split these models");
            Assert.All(shards, s => Assert.Matches(@"^model-\d{5}-of-\d{5}\.safetensors$", s));

            // Same tensor names as the checkpoint transformers wrote.
            using (var written = Checkpoint.Open(directory))
            using (var source = Checkpoint.Open(EncoderFixture.Directory(fixture)))
                Assert.Equal(source.Names.Order(), written.Names.Order());

            var savedConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!;
            var sourceConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(EncoderFixture.Directory(fixture), "config.json")))!;
            foreach (var field in new[] { "model_type", "architectures", "hidden_size", "vocab_size", "pad_token_id", "dtype" })
                Assert.Equal(sourceConfig[field]?.ToJsonString(), savedConfig[field]?.ToJsonString());

            using var reloaded = AutoModel.FromPretrained(directory, out var report);
            Assert.Empty(report.Missing);
            Assert.Empty(report.Unexpected);
            using var before = original.Forward(EncoderFixture.Inputs(reference));
            using var after = reloaded.Forward(EncoderFixture.Inputs(reference));
            Assert.True(before.Logits!.eq(after.Logits!).all().item<bool>(), "logits changed across save/reload");
            Assert.True(before.LastHiddenState.eq(after.LastHiddenState).all().item<bool>());
        }
        finally
        {
            EncoderFixture.Dispose(reference);
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void SavingInBFloat16StoresBf16AndRecordsTheDtype()
    {
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            using (var model = AutoModel.FromPretrained(EncoderFixture.Directory("bert-seqcls")))
                model.SavePretrained(directory, ScalarType.BFloat16);
            using (var checkpoint = Checkpoint.Open(directory))
                Assert.All(checkpoint.Names, name => Assert.Equal("BF16", checkpoint.Info(name).DType));
            Assert.Equal("bfloat16", PretrainedConfig.FromDirectory(directory).DType);
            using var reloaded = AutoModel.FromPretrained(directory);
            Assert.IsType<BertForSequenceClassification>(reloaded);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ClassifierTrainedFromMaskedLmCheckpointSavesItsOwnArchitecture()
    {
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            using (var model = AutoModel.FromPretrained(EncoderFixture.Directory("bert-mlm"), ModelTask.SequenceClassification))
                model.SavePretrained(directory);
            Assert.Equal(["BertForSequenceClassification"], PretrainedConfig.FromDirectory(directory).Architectures);
            using var reloaded = AutoModel.FromPretrained(directory, out var report);
            Assert.IsType<BertForSequenceClassification>(reloaded);
            Assert.Empty(report.Missing);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Saved configs name the class transformers should build: every encoder registration's model
    /// reports its own architecture name.</summary>
    [Theory]
    [InlineData("bert-seqcls")]
    [InlineData("roberta-seqcls")]
    [InlineData("distilbert-seqcls")]
    [InlineData("deberta-v2-seqcls")]
    public void EveryRegisteredClassSavesItsOwnArchitectureName(string fixture)
    {
        var config = PretrainedConfig.FromDirectory(EncoderFixture.Directory(fixture));
        var registrations = AutoModel.Registrations.Where(r => r.ModelType == config.ModelType).ToList();
        Assert.True(registrations.Count >= 2);
        foreach (var registration in registrations)
        {
            using var model = registration.Create(config);
            Assert.Equal(registration.Architecture, model.ArchitectureName);
        }
    }
}
