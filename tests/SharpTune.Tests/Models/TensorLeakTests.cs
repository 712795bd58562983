using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Forward passes free every intermediate: the live tensor count of the thread is the same after
/// many forwards (outputs disposed) as after the first. TorchSharp counts tensors per thread.</summary>
public class TensorLeakTests
{
    [Theory]
    [InlineData("bert-mlm")]
    [InlineData("roberta-seqcls")]
    [InlineData("distilbert-seqcls")]
    [InlineData("deberta-v2-seqcls")]
    public void ManyForwardsKeepTheLiveTensorCountStable(string fixture)
    {
        var reference = EncoderFixture.Reference(fixture);
        try
        {
            using var model = AutoModel.FromPretrained(EncoderFixture.Directory(fixture));
            using var labels = fixture.EndsWith("mlm") ? reference["input_ids"].clone() : tensor(new long[] { 1, 0 });
            var inputs = EncoderFixture.Inputs(reference) with { Labels = labels };
            model.Forward(inputs).Dispose();
            var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (var i = 0; i < 50; i++)
            {
                using var output = model.Forward(inputs);
                Assert.NotNull(output.Loss);
            }
            Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        finally
        {
            EncoderFixture.Dispose(reference);
        }
    }
}
