using System.CommandLine;
using SharpTune.Engine;
using TorchSharp;

namespace SharpTune.Cli.Infrastructure;

/// <summary>Options every command accepts: where and in which precision to compute, threads, seed, verbosity.</summary>
public static class GlobalOptions
{
    public static readonly Option<string> Device = new("--device")
    {
        Description = "Where to compute: cpu, cuda, cuda:N or auto (CUDA when available).",
        DefaultValueFactory = _ => "auto",
        Recursive = true,
    };

    public static readonly Option<string> DType = new("--dtype")
    {
        Description = "Compute precision: float32, bfloat16 or float16.",
        DefaultValueFactory = _ => "float32",
        Recursive = true,
    };

    public static readonly Option<int?> Threads = new("--threads")
    {
        Description = "CPU threads for the engine (default: libtorch's choice, usually the core count).",
        Recursive = true,
    };

    public static readonly Option<long?> Seed = new("--seed")
    {
        Description = "Seed for every random generator, for reproducible runs.",
        Recursive = true,
    };

    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Verbose logs, and stack traces on errors.",
        Recursive = true,
    };

    static GlobalOptions()
    {
        Device.AcceptOnlyFromAmong("auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4", "cuda:5", "cuda:6", "cuda:7");
        DType.AcceptOnlyFromAmong("float32", "bfloat16", "float16", "fp32", "bf16", "fp16");
    }

    public static void AddTo(Command root)
    {
        root.Options.Add(Device);
        root.Options.Add(DType);
        root.Options.Add(Threads);
        root.Options.Add(Seed);
        root.Options.Add(Verbose);
    }

    /// <summary>Applies threads and seed, and resolves the device and dtype of a parsed command line.</summary>
    public static EngineContext Apply(ParseResult parseResult)
    {
        if (parseResult.GetValue(Threads) is { } threads)
            TorchRuntime.SetThreads(threads);
        var seed = parseResult.GetValue(Seed);
        if (seed is { } value)
            TorchRuntime.Seed(value);
        return new EngineContext(
            TorchRuntime.ResolveDevice(parseResult.GetValue(Device)),
            TorchRuntime.ResolveDType(parseResult.GetValue(DType)),
            seed,
            parseResult.GetValue(Verbose));
    }
}

/// <summary>The resolved engine settings a command runs with.</summary>
public sealed record EngineContext(torch.Device Device, torch.ScalarType DType, long? Seed, bool Verbose);
