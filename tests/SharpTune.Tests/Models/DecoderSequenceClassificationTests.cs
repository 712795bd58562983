using SharpTune.IO;
using SharpTune.Models;
using static TorchSharp.torch;
using static SharpTune.Tests.Models.DecoderTestSupport;

namespace SharpTune.Tests.Models;

/// <summary>The decoders' sequence-classification head: score at the last non-padding token, on top of the
/// transformers-exact hidden states.</summary>
public class DecoderSequenceClassificationTests
{
    public static TheoryData<string> Fixtures => DecoderParityTests.Fixtures;

    private static PreTrainedModel LoadClassifier(string fixture, long? padTokenId, out LoadReport report)
    {
        var config = PretrainedConfig.FromDirectory(ModelDir(fixture));
        if (padTokenId is { } pad)
            config.Set("pad_token_id", pad);
        config.SetLabels(["negative", "neutral", "positive"]);
        var model = AutoModel.FromConfig(config, ModelTask.SequenceClassification);
        using var checkpoint = Checkpoint.Open(ModelDir(fixture));
        report = model.LoadWeights(checkpoint);
        model.eval();
        return model;
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void ScoresTheLastNonPaddingTokenOfEachRow(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadClassifier(fixture, padTokenId: 0, out var report);
        Assert.Equal(["score.weight"], report.Initialized);
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        var labels = tensor(new long[] { 0, 2 });
        using var output = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"], Labels = labels });

        // Row 0 is unpadded (last token 11); row 1 is right-padded with id 0 after 8 tokens (last token 7).
        var score = model.named_parameters().Single(p => p.name == "score.weight").parameter;
        var hidden = reference["hidden_states_last"];
        var expected = stack([hidden[0, 11], hidden[1, 7]]).matmul(score.detach().t());
        Assert.Equal([2L, 3L], output.Logits!.shape);
        Assert.True(MaxAbsError(output.Logits, expected) <= 1e-4);
        var expectedLoss = nn.functional.cross_entropy(expected, labels).item<float>();
        Assert.Equal(expectedLoss, output.Loss!.item<float>(), 1e-5);
    }

    [Fact]
    public void BatchWithoutPadTokenIdIsRefused()
    {
        using var scope = NewDisposeScope();
        using var model = LoadClassifier("llama-lm", padTokenId: null, out _);
        var ids = LoadReference(Path.Combine(ModelDir("llama-lm"), "reference.safetensors"))["input_ids"];
        var error = Assert.Throws<ArgumentException>(() => model.Forward(new ModelInputs(ids)));
        Assert.Contains("pad_token_id", error.Message);
        using var single = model.Forward(new ModelInputs(ids.narrow(0, 0, 1)));
        Assert.Equal([1L, 3L], single.Logits!.shape);
    }
}
