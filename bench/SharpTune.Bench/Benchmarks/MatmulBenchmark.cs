using System.Diagnostics;
using static TorchSharp.torch;

namespace SharpTune.Bench.Benchmarks;

/// <summary>Dense matmul throughput through TorchSharp against PyTorch on the same device: the engine's
/// overhead floor, and a check that the device and dtype are really used.</summary>
public sealed class MatmulBenchmark : IBenchmark
{
    public string Name => "matmul";
    public string Description => "Square matmul TFLOP/s (n=2048 CPU, 8192 CUDA), TorchSharp vs PyTorch.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var n = context.DeviceName == "cuda" ? 8192 : 2048;
        var repeats = context.Quick ? 3 : 10;
        double seconds;
        using (NewDisposeScope())
        {
            var a = randn(n, n).to(context.DType).to(context.Device);
            var b = randn(n, n).to(context.DType).to(context.Device);
            matmul(a, b).Dispose();
            Synchronize(context);
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < repeats; i++)
                matmul(a, b).Dispose();
            Synchronize(context);
            seconds = watch.Elapsed.TotalSeconds / repeats;
        }
        var peer = PythonPeer.TryRun($$"""
            import json, time, torch
            dev = "{{context.DeviceName}}"; dt = getattr(torch, "{{context.DTypeName}}")
            a = torch.randn({{n}}, {{n}}).to(dev, dt); b = torch.randn({{n}}, {{n}}).to(dev, dt)
            torch.matmul(a, b); torch.cuda.synchronize() if dev == "cuda" else None
            t = time.perf_counter()
            for _ in range({{repeats}}): torch.matmul(a, b)
            torch.cuda.synchronize() if dev == "cuda" else None
            print(json.dumps({"seconds": (time.perf_counter() - t) / {{repeats}}}))
            """);
        var flops = 2.0 * n * n * n;
        var peerSeconds = peer?.GetProperty("seconds").GetDouble();
        yield return new Measure(Name, $"{context.DeviceName} {context.DTypeName} n={n}", "TFLOP/s", flops / seconds / 1e12,
            "pytorch", peerSeconds is { } s ? flops / s / 1e12 : null, HigherIsBetter: true);
    }

    private static void Synchronize(BenchContext context)
    {
        if (context.DeviceName == "cuda")
            cuda.synchronize();
    }
}
