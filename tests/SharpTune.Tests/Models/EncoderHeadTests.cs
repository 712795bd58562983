using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Tests.Models;

/// <summary>Task heads: losses as transformers computes them, and loading base weights into a task model.</summary>
public class EncoderHeadTests
{
    private static readonly long[][] Ids = [[2, 15, 99, 7, 3], [2, 44, 3, 0, 0]];
    private static readonly long[][] Mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]];

    private static PreTrainedModel LoadSeqCls(Action<PretrainedConfig> edit, string weights = "bert-seqcls")
    {
        var config = PretrainedConfig.FromDirectory(EncoderFixture.Directory("bert-seqcls"));
        edit(config);
        var model = AutoModel.FromConfig(config, ModelTask.SequenceClassification);
        using var checkpoint = Checkpoint.Open(EncoderFixture.Directory(weights));
        model.LoadWeights(checkpoint);
        model.eval();
        return model;
    }

    private static ModelInputs Batch(Tensor labels) => new(tensor(Ids.SelectMany(r => r).ToArray(), [2, 5])) { AttentionMask = tensor(Mask.SelectMany(r => r).ToArray(), [2, 5]), Labels = labels };

    [Fact]
    public void IntegerLabelsGiveCrossEntropy()
    {
        using var scope = NewDisposeScope();
        using var model = LoadSeqCls(_ => { });
        using var output = model.Forward(Batch(tensor(new long[] { 1, 0 })));
        var expected = -(output.Logits!.log_softmax(1)[0, 1] + output.Logits.log_softmax(1)[1, 0]) / 2;
        Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 6);
    }

    [Fact]
    public void FloatLabelsGiveMultiLabelBce()
    {
        using var scope = NewDisposeScope();
        using var model = LoadSeqCls(_ => { });
        var labels = tensor(new float[] { 1, 0, 1, 1 }, [2, 2]);
        using var output = model.Forward(Batch(labels));
        var expected = F.binary_cross_entropy_with_logits(output.Logits!, labels);
        Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 6);
        Assert.Equal(SequenceClassificationLoss.MultiLabel, SequenceClassificationLoss.InferProblemType(null, 2, labels));
    }

    [Fact]
    public void OneLabelGivesRegressionMse()
    {
        using var scope = NewDisposeScope();
        using var model = LoadSeqCls(c => { c.Raw.Remove("id2label"); c.Set("num_labels", 1); }, weights: "bert-mlm");
        var labels = tensor(new float[] { 0.5f, -1.5f });
        using var output = model.Forward(Batch(labels));
        Assert.Equal([2L, 1L], output.Logits!.shape);
        var expected = (output.Logits.squeeze() - labels).pow(2).mean();
        Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 6);
    }

    [Fact]
    public void ExplicitProblemTypeOverridesInference()
    {
        using var scope = NewDisposeScope();
        using var model = LoadSeqCls(c => c.Set("problem_type", JsonValue.Create("multi_label_classification")));
        var labels = tensor(new long[] { 1, 0, 0, 1 }, [2, 2]);
        using var output = model.Forward(Batch(labels));
        var expected = F.binary_cross_entropy_with_logits(output.Logits!, labels.to(ScalarType.Float32));
        Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 6);
    }

    [Fact]
    public void MaskedLmLossIgnoresMinus100()
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(EncoderFixture.Directory("bert-mlm"));
        var labels = tensor(new long[] { -100, 15, -100, -100, -100, -100, -100, 44, -100, -100 }, [2, 5]);
        using var output = model.Forward(Batch(labels));
        var logProbs = output.Logits!.log_softmax(-1);
        var expected = -(logProbs[0, 1, 15] + logProbs[1, 2, 44]) / 2;
        Assert.Equal(expected.item<float>(), output.Loss!.item<float>(), 5);
    }

    [Fact]
    public void BaseCheckpointIntoClassifierInitialisesAndReportsTheHead()
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(EncoderFixture.Directory("bert-mlm"), out var report, ModelTask.SequenceClassification);
        Assert.IsType<BertForSequenceClassification>(model);
        Assert.Equal(["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"], report.Initialized.Order());
        Assert.Contains("cls.predictions.bias", report.Unexpected);
        var classifier = model.named_parameters().Single(p => p.name == "classifier.weight").parameter;
        var std = classifier.std().item<float>();
        Assert.InRange(std, 0.01, 0.03); // normal(0, initializer_range = 0.02), as transformers' _init_weights
        Assert.Equal(0f, model.named_parameters().Single(p => p.name == "classifier.bias").parameter.abs().sum().item<float>());
    }

    [Fact]
    public void MaskedLmCheckpointLoadsIntoBaseModel()
    {
        using var scope = NewDisposeScope();
        var reference = EncoderFixture.Reference("bert-mlm");
        try
        {
            using var model = AutoModel.FromPretrained(EncoderFixture.Directory("bert-mlm"), out var report, ModelTask.Base);
            Assert.IsType<BertModel>(model);
            Assert.Equal(["pooler.dense.bias", "pooler.dense.weight"], report.Initialized.Order());
            using var output = model.Forward(EncoderFixture.Inputs(reference));
            Assert.True(EncoderFixture.MaxAbsError(output.LastHiddenState, reference["hidden_states_last"]) <= 1e-4);
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
    }

    [Fact]
    public void DebertaSkipsNegativeLabelsAndAcceptsSoftLabels()
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(EncoderFixture.Directory("deberta-v2-seqcls"));
        using var skipped = model.Forward(Batch(tensor(new long[] { 1, -1 })));
        Assert.Equal(-skipped.Logits!.log_softmax(1)[0, 1].item<float>(), skipped.Loss!.item<float>(), 5);

        var soft = tensor(new float[] { 0.25f, 0.75f, 1f, 0f }, [2, 2]);
        using var distribution = model.Forward(Batch(soft));
        var expected = -(distribution.Logits!.log_softmax(1) * soft).sum(1).mean();
        Assert.Equal(expected.item<float>(), distribution.Loss!.item<float>(), 5);
    }

    [Fact]
    public void DistilBertSinusoidalPositionsAreInitialisedAsTransformersDoes()
    {
        var directory = Support.RepoPaths.NewTempDirectory();
        try
        {
            var config = PretrainedConfig.FromDirectory(EncoderFixture.Directory("distilbert-seqcls"));
            config.Set("sinusoidal_pos_embds", true);
            config.Save(directory);
            using (var source = Checkpoint.Open(EncoderFixture.Directory("distilbert-seqcls")))
            {
                var kept = source.Names.Where(n => !n.Contains("position_embeddings")).Select(n => new KeyValuePair<string, Tensor>(n, source.Load(n))).ToList();
                SafeTensorsWriter.Save(Path.Combine(directory, Checkpoint.SingleFile), kept);
                kept.ForEach(t => t.Value.Dispose());
            }
            using var model = AutoModel.FromPretrained(directory, out var report);
            Assert.Equal(["distilbert.embeddings.position_embeddings.weight"], report.Initialized);
            using var table = model.named_parameters().Single(p => p.name == "distilbert.embeddings.position_embeddings.weight").parameter.detach();
            var angle = 3 / Math.Pow(10000, 4.0 / 64); // position 3, dimensions 4 (sin) and 5 (cos) share the pair index 2
            Assert.Equal(Math.Sin(angle), table[3, 4].item<float>(), 5);
            Assert.Equal(Math.Cos(angle), table[3, 5].item<float>(), 5);
            Assert.Equal(0f, table[0, 0].item<float>());
            Assert.Equal(1f, table[0, 1].item<float>());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
