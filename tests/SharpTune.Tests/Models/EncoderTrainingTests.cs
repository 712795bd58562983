using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>What fine-tuning relies on: in training mode dropout is active, and the loss reaches every parameter.</summary>
public class EncoderTrainingTests
{
    [Theory]
    [InlineData("bert-seqcls")]
    [InlineData("bert-mlm")]
    [InlineData("roberta-seqcls")]
    [InlineData("distilbert-seqcls")]
    [InlineData("deberta-v2-seqcls")]
    public void LossBackpropagatesToEveryParameter(string fixture)
    {
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            using var model = AutoModel.FromPretrained(EncoderFixture.Directory(fixture));
            model.train();
            using var scope = NewDisposeScope();
            var labels = fixture.EndsWith("mlm") ? reference["input_ids"] : tensor(new long[] { 1, 0 });
            using var output = model.Forward(EncoderFixture.Inputs(reference, hiddenStates: false) with { Labels = labels });
            output.Loss!.backward();
            foreach (var (name, parameter) in model.named_parameters())
            {
                Assert.True(parameter.grad is not null, $"{fixture}: no gradient reached {name}");
                Assert.True(parameter.grad!.isfinite().all().item<bool>(), $"{fixture}: non-finite gradient in {name}");
            }
            Assert.Contains(model.named_parameters(), p => p.parameter.grad!.abs().sum().item<float>() > 0);
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
    }

    [Fact]
    public void DropoutIsActiveOnlyInTrainingMode()
    {
        var config = PretrainedConfig.FromDirectory(EncoderFixture.Directory("bert-seqcls"));
        config.Set("hidden_dropout_prob", 0.1);
        config.Set("attention_probs_dropout_prob", 0.1);
        using var model = AutoModel.FromConfig(config);
        using var scope = NewDisposeScope();
        var inputs = new ModelInputs(tensor(new long[] { 2, 15, 99, 7, 3, 8 }, [1, 6]));
        model.eval();
        using (var first = model.Forward(inputs))
        using (var second = model.Forward(inputs))
            Assert.True(first.LastHiddenState.eq(second.LastHiddenState).all().item<bool>());
        model.train();
        using (var first = model.Forward(inputs))
        using (var second = model.Forward(inputs))
            Assert.False(first.LastHiddenState.eq(second.LastHiddenState).all().item<bool>());
    }
}
