using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;
using SharpTune.Training.Heads;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class HeadTests
{
    private static readonly string BertDir = RepoPaths.Fixture("models", "bert-base-model");

    private static (Tensor Ids, Tensor Mask) Inputs()
    {
        using var reference = SafeTensorsFile.Open(Path.Combine(BertDir, "reference.safetensors"));
        return (reference.Load("input_ids"), reference.Load("attention_mask"));
    }

    private static Tensor Param(SequenceClassifierWithPooling model, string name) =>
        model.named_parameters().Single(p => p.name == name).parameter;

    [Theory]
    [InlineData(PoolingStrategy.Cls)]
    [InlineData(PoolingStrategy.Mean)]
    [InlineData(PoolingStrategy.Max)]
    [InlineData(PoolingStrategy.Attention)]
    public void PoolingHeadsMatchAHandComputationOnAPaddedBatch(PoolingStrategy strategy)
    {
        using var scope = NewDisposeScope();
        using var model = SequenceClassifierWithPooling.FromPretrained(BertDir, strategy, labels: ["neg", "pos", "neutral"]);
        model.eval();
        var (ids, mask) = Inputs();
        using var output = model.Forward(new ModelInputs(ids) { AttentionMask = mask });

        // The encoder's weights came from the base checkpoint: its hidden states are the reference ones.
        using var reference = SafeTensorsFile.Open(Path.Combine(BertDir, "reference.safetensors"));
        var hidden = reference.Load("last_hidden_state");
        Assert.True((output.LastHiddenState - hidden).abs().max().item<float>() <= 1e-4);

        var rows = new List<Tensor>();
        for (var b = 0; b < ids.shape[0]; b++)
        {
            var length = mask[b].sum().item<long>();
            var real = hidden[b].narrow(0, 0, length);     // rows are right-padded
            rows.Add(strategy switch
            {
                PoolingStrategy.Cls => hidden[b, 0],
                PoolingStrategy.Mean => real.mean([0]),
                PoolingStrategy.Max => real.max(0).values,
                _ => AttentionPooled(model, real),
            });
        }
        var expected = F.linear(stack(rows), Param(model, "pooling_head.classifier.weight"), Param(model, "pooling_head.classifier.bias"));
        Assert.Equal(new long[] { 2, 3 }, output.Logits!.shape);
        Assert.True((output.Logits - expected).abs().max().item<float>() <= 1e-5);
    }

    private static Tensor AttentionPooled(SequenceClassifierWithPooling model, Tensor real)
    {
        var scores = F.linear(F.linear(real, Param(model, "pooling_head.pooling.dense.weight"), Param(model, "pooling_head.pooling.dense.bias")).tanh(),
            Param(model, "pooling_head.pooling.score.weight"), Param(model, "pooling_head.pooling.score.bias")).squeeze(-1);
        return (scores.softmax(0).unsqueeze(-1) * real).sum(dim: 0);
    }

    /// <summary>A 4-layer variant of the fixture encoder (layers 2 and 3 start fresh), enough for every pooling.</summary>
    private static string FourLayerEncoder()
    {
        var dir = RepoPaths.NewTempDirectory();
        foreach (var file in Directory.GetFiles(BertDir))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        var config = PretrainedConfig.FromDirectory(dir);
        config.Set("num_hidden_layers", 4);
        config.Save(dir);
        return dir;
    }

    [Fact]
    public void ConcatLast4ClsUsesTheLastFourLayers()
    {
        using var scope = NewDisposeScope();
        var dir = FourLayerEncoder();
        using var model = SequenceClassifierWithPooling.FromPretrained(dir, PoolingStrategy.ConcatLast4Cls);
        model.eval();
        var (ids, mask) = Inputs();
        using var output = model.Forward(new ModelInputs(ids) { AttentionMask = mask });
        using var encoded = model.Encoder.Forward(new ModelInputs(ids) { AttentionMask = mask, OutputHiddenStates = true });
        var states = encoded.HiddenStates!;
        Assert.Equal(5, states.Count);
        var pooled = cat([states[4][.., 0], states[3][.., 0], states[2][.., 0], states[1][.., 0]], 1);
        Assert.Equal(256, Param(model, "pooling_head.classifier.weight").shape[1]);
        var expected = F.linear(pooled, Param(model, "pooling_head.classifier.weight"), Param(model, "pooling_head.classifier.bias"));
        Assert.True((output.Logits! - expected).abs().max().item<float>() <= 1e-5);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void LossesFollowTheProblemType()
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Inputs();
        using (var single = SequenceClassifierWithPooling.FromPretrained(BertDir, PoolingStrategy.Mean, labels: ["a", "b", "c"]))
        {
            single.eval();
            var labels = tensor(new long[] { 2, 0 });
            using var output = single.Forward(new ModelInputs(ids) { AttentionMask = mask, Labels = labels });
            var logProbs = output.Logits!.log_softmax(-1);
            var expected = -(logProbs[0, 2] + logProbs[1, 0]) / 2;
            Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 5);
        }
        using (var multi = SequenceClassifierWithPooling.FromPretrained(BertDir, PoolingStrategy.Mean, labels: ["x", "y"], problemType: "multi_label_classification"))
        {
            multi.eval();
            var targets = tensor(new float[] { 1, 0, 1, 1 }, [2, 2]);
            using var output = multi.Forward(new ModelInputs(ids) { AttentionMask = mask, Labels = targets });
            var p = output.Logits!.sigmoid();
            var expected = -(targets * p.log() + (1 - targets) * (1 - p).log()).mean();
            Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 5);
        }
        using (var regression = SequenceClassifierWithPooling.FromPretrained(BertDir, PoolingStrategy.Max, labels: ["score"]))
        {
            regression.eval();
            var targets = tensor(new float[] { 0.5f, -1.5f });
            using var output = regression.Forward(new ModelInputs(ids) { AttentionMask = mask, Labels = targets });
            var expected = (output.Logits!.squeeze(-1) - targets).pow(2).mean();
            Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 5);
        }
    }

    [Theory]
    [InlineData(PoolingStrategy.Cls)]
    [InlineData(PoolingStrategy.Mean)]
    [InlineData(PoolingStrategy.Max)]
    [InlineData(PoolingStrategy.Attention)]
    [InlineData(PoolingStrategy.ConcatLast4Cls)]
    public void SavedHeadIsSelfDescribingAndReloadsThroughAutoModel(PoolingStrategy strategy)
    {
        using var scope = NewDisposeScope();
        var encoder = FourLayerEncoder();
        var dir = RepoPaths.NewTempDirectory();
        var (ids, mask) = Inputs();
        using var model = SequenceClassifierWithPooling.FromPretrained(encoder, strategy, labels: ["neg", "pos", "neutral"]);
        model.eval();
        // Trained-looking head weights, so a reload that re-initialised them would show.
        using (no_grad())
            foreach (var (_, parameter) in model.named_parameters().Where(p => p.name.StartsWith("pooling_head.", StringComparison.Ordinal)))
                parameter.uniform_(-0.5, 0.5);
        model.SavePretrained(dir);

        var config = PretrainedConfig.FromDirectory(dir);
        Assert.Equal(new[] { "BertForSequenceClassificationWithPooling" }, config.Architectures);
        Assert.Equal("bert", config.ModelType);
        Assert.Equal(Pooling.Name(strategy), config.Get(SequenceClassifierWithPooling.PoolingConfigKey, ""));
        Assert.Equal("neutral", config.Id2Label[2]);
        using (var weights = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors")))
        {
            var head = weights.Names.Where(n => !n.StartsWith("bert.", StringComparison.Ordinal)).Order().ToList();
            Assert.Equal(strategy == PoolingStrategy.Attention
                ? new[] { "pooling_head.classifier.bias", "pooling_head.classifier.weight", "pooling_head.pooling.dense.bias", "pooling_head.pooling.dense.weight",
                   "pooling_head.pooling.score.bias", "pooling_head.pooling.score.weight" }
                : new[] { "pooling_head.classifier.bias", "pooling_head.classifier.weight" }, head);
        }

        using var expected = model.Forward(new ModelInputs(ids) { AttentionMask = mask });
        foreach (ModelTask? task in new ModelTask?[] { ModelTask.SequenceClassification, null })
        {
            using var reloaded = AutoModel.FromPretrained(dir, out var report, task);
            Assert.Empty(report.Missing);
            Assert.Equal(strategy, Assert.IsType<SequenceClassifierWithPooling>(reloaded).Strategy);
            using var output = reloaded.Forward(new ModelInputs(ids) { AttentionMask = mask });
            Assert.Equal(0f, (expected.Logits! - output.Logits!).abs().max().item<float>());
        }
        // The encoder part loads on its own (feature extraction), as transformers' AutoModel loads it.
        using (var encoderOnly = AutoModel.FromPretrained(dir, out var encoderReport, ModelTask.Base))
        {
            Assert.IsType<BertModel>(encoderOnly);
            Assert.Empty(encoderReport.Missing);
            using var hidden = encoderOnly.Forward(new ModelInputs(ids) { AttentionMask = mask });
            Assert.Equal(0f, (expected.LastHiddenState - hidden.LastHiddenState).abs().max().item<float>());
        }
        Directory.Delete(dir, true);
        Directory.Delete(encoder, true);
    }

    [Fact]
    public void SavedHeadReloadsWithItsPoolingAndWeights()
    {
        using var scope = NewDisposeScope();
        var dir = RepoPaths.NewTempDirectory();
        var (ids, mask) = Inputs();
        using var model = SequenceClassifierWithPooling.FromPretrained(BertDir, PoolingStrategy.Attention);
        model.eval();
        model.SavePretrained(dir);
        using var reloaded = SequenceClassifierWithPooling.FromPretrained(dir);
        reloaded.eval();
        Assert.Equal(PoolingStrategy.Attention, reloaded.Strategy);
        using var a = model.Forward(new ModelInputs(ids) { AttentionMask = mask });
        using var b = reloaded.Forward(new ModelInputs(ids) { AttentionMask = mask });
        Assert.Equal(0f, (a.Logits! - b.Logits!).abs().max().item<float>());
        Directory.Delete(dir, true);
    }
}
