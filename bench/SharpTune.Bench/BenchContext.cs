using SharpTune.Engine;
using static TorchSharp.torch;

namespace SharpTune.Bench;

/// <summary>What every benchmark receives: device, dtype, the repository root, and a Python peer runner.</summary>
public sealed class BenchContext(Device device, ScalarType dtype, string repoRoot, bool quick)
{
    public Device Device { get; } = device;
    public ScalarType DType { get; } = dtype;
    public string RepoRoot { get; } = repoRoot;
    /// <summary>Fewer repetitions, for smoke runs.</summary>
    public bool Quick { get; } = quick;
    public string DTypeName => TorchRuntime.DTypeName(DType);
    public string DeviceName => Device.type == TorchSharp.DeviceType.CUDA ? "cuda" : "cpu";

    public string RepoPath(params string[] parts) => Path.Combine([RepoRoot, .. parts]);
}

public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    IEnumerable<Measure> Run(BenchContext context);
}
