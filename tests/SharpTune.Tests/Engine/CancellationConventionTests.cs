using SharpTune.Models;
using SharpTune.Quantization;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Engine;

/// <summary>Long library calls take a CancellationToken (last parameter) and stop with OperationCanceledException.</summary>
public class CancellationConventionTests
{
    [Fact]
    public void FromPretrainedAndQuantizeStopWhenCancelled()
    {
        var miniBert = Path.Combine(RepoPaths.Models, "mini-bert");
        Assert.ThrowsAny<OperationCanceledException>(() => AutoModel.FromPretrained(miniBert, ModelTask.MaskedLM, cancellationToken: new CancellationToken(true)));

        using var model = AutoModel.FromPretrained(miniBert, ModelTask.MaskedLM);
        var linearsBefore = model.modules().Count(m => m is TorchSharp.Modules.Linear);
        Assert.ThrowsAny<OperationCanceledException>(() => Quantizer.Quantize(model, new QuantizationOptions(), cancellationToken: new CancellationToken(true)));
        Assert.Equal(linearsBefore, model.modules().Count(m => m is TorchSharp.Modules.Linear));
        Assert.False(Quantizer.IsQuantized(model.Config));
    }
}
