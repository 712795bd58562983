using SharpTune.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Engine;

public class TorchEngineTests
{
    [Fact]
    public void LibTorchLoadsAndMultipliesMatrices()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        var b = tensor(new float[] { 5, 6, 7, 8 }).reshape(2, 2);
        var product = matmul(a, b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, product.data<float>().ToArray());
        Assert.StartsWith("2.10", TorchRuntime.Describe().LibTorchVersion);
    }

    [Fact]
    public void AutogradComputesGradients()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        Assert.Equal(new float[] { 2, 4, 6 }, x.grad!.data<float>().ToArray());
    }

    [Fact]
    public void SelfCheckRunsForwardAndBackwardOnCpu()
    {
        var result = TorchRuntime.SelfCheck(CPU, ScalarType.Float32);
        Assert.True(result.Loss > 0 && double.IsFinite(result.Loss));
        Assert.True(result.GradientNorm > 0);
    }

    [Theory]
    [InlineData("bf16", ScalarType.BFloat16)]
    [InlineData("float16", ScalarType.Float16)]
    [InlineData("float32", ScalarType.Float32)]
    public void ResolvesDTypeNames(string name, ScalarType expected) => Assert.Equal(expected, TorchRuntime.ResolveDType(name));

    [Fact]
    public void RejectsUnknownDeviceAndDType()
    {
        Assert.Contains("tpu", Assert.Throws<ArgumentException>(() => TorchRuntime.ResolveDevice("tpu")).Message);
        Assert.Contains("int3", Assert.Throws<ArgumentException>(() => TorchRuntime.ResolveDType("int3")).Message);
    }
}
