using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Engine;

/// <summary>What the engine sees on this machine: the first thing to check when something is off.</summary>
public sealed record EngineInfo(
    string SharpTuneVersion,
    string TorchSharpVersion,
    string LibTorchVersion,
    int Threads,
    int InteropThreads,
    bool CudaAvailable,
    int CudaDeviceCount,
    bool BFloat16Supported,
    IReadOnlyList<string> Devices,
    LibTorchBuildInfo LibTorch);

/// <summary>Result of a tiny forward and backward pass, proving the native engine computes.</summary>
public sealed record SelfCheckResult(string Device, string DType, double Loss, double GradientNorm, TimeSpan Elapsed);

/// <summary>Process-wide engine settings: device and dtype resolution, threads, seeding.</summary>
public static class TorchRuntime
{
    /// <summary>Resolves "cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU).</summary>
    public static Device ResolveDevice(string? name)
    {
        LibTorch.EnsureLoaded();
        var value = string.IsNullOrWhiteSpace(name) ? "auto" : name.Trim().ToLowerInvariant();
        if (value == "auto")
            return cuda.is_available() ? CUDA : CPU;
        if (value == "cpu")
            return CPU;
        if (value == "cuda" || value.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{name}' was asked for, but CUDA is not available: {LibTorch.Describe().CudaUnavailableReason} (or use --device cpu or auto)");
            return new Device(value);
        }
        throw new ArgumentException($"unknown device '{name}': expected cpu, cuda, cuda:N or auto");
    }

    /// <summary>Resolves a dtype name as used by Hugging Face configs and the CLI.</summary>
    public static ScalarType ResolveDType(string? name) => (name ?? "float32").Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" or "float" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" or "half" => ScalarType.Float16,
        _ => throw new ArgumentException($"unknown dtype '{name}': expected float32, bfloat16 or float16"),
    };

    /// <summary>The Hugging Face spelling of a floating dtype (as written to config.json).</summary>
    public static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => dtype.ToString().ToLowerInvariant(),
    };

    public static void SetThreads(int threads)
    {
        if (threads < 1)
            throw new ArgumentException($"--threads must be at least 1 (got {threads})");
        LibTorch.EnsureLoaded();
        set_num_threads(threads);
    }

    /// <summary>Seeds every generator SharpTune uses: libtorch's (CPU and CUDA) and the managed one.</summary>
    public static void Seed(long seed)
    {
        LibTorch.EnsureLoaded();
        manual_seed(seed);
        if (cuda.is_available())
            cuda.manual_seed_all(seed);
        SharedRandom = new Random(unchecked((int)seed));
    }

    /// <summary>Managed randomness (shuffles, samplers) seeded together with libtorch by <see cref="Seed"/>.</summary>
    public static Random SharedRandom { get; private set; } = new(42);

    public static EngineInfo Describe()
    {
        var build = LibTorch.Describe();
        var cudaAvailable = cuda.is_available();
        var deviceCount = cudaAvailable ? cuda.device_count() : 0;
        var devices = new List<string> { "cpu" };
        for (var i = 0; i < deviceCount; i++)
            devices.Add($"cuda:{i}");
        return new EngineInfo(
            SharpTuneVersion: typeof(TorchRuntime).Assembly.GetName().Version?.ToString(3) ?? "0.0.0",
            TorchSharpVersion: typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "unknown",
            LibTorchVersion: __version__,
            Threads: get_num_threads(),
            InteropThreads: get_num_interop_threads(),
            CudaAvailable: cudaAvailable,
            CudaDeviceCount: deviceCount,
            BFloat16Supported: SupportsBFloat16(cudaAvailable ? CUDA : CPU),
            Devices: devices,
            LibTorch: build);
    }

    /// <summary>True when a bf16 matmul runs and agrees with fp32 on the device.</summary>
    public static bool SupportsBFloat16(Device device)
    {
        try
        {
            using var scope = NewDisposeScope();
            var a = ones(8, 8, dtype: ScalarType.BFloat16, device: device);
            var product = matmul(a, a).to(ScalarType.Float32).cpu();
            return Math.Abs(product[0, 0].item<float>() - 8f) < 1e-3;
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>A two-layer perceptron forward and backward pass: the smallest end-to-end proof that
    /// the native library loads, computes and differentiates on the device.</summary>
    public static SelfCheckResult SelfCheck(Device device, ScalarType dtype)
    {
        var watch = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var generator = new Generator(7, CPU);
        var x = randn(32, 16, generator: generator).to(dtype).to(device);
        var target = randn(32, 4, generator: generator).to(dtype).to(device);
        using var first = nn.Linear(16, 64);
        using var second = nn.Linear(64, 4);
        first.to(dtype).to(device);
        second.to(dtype).to(device);
        var loss = nn.functional.mse_loss(second.forward(nn.functional.gelu(first.forward(x))), target);
        loss.backward();
        var gradientNorm = first.weight!.grad!.to(ScalarType.Float32).norm().item<float>();
        return new SelfCheckResult(device.ToString(), DTypeName(dtype), loss.to(ScalarType.Float32).item<float>(), gradientNorm, watch.Elapsed);
    }
}
