using SharpTune.Bench;
using SharpTune.Bench.Benchmarks;
using SharpTune.Engine;

// Usage: SharpTune.Bench [names...] [--device cpu|cuda|auto] [--dtype float32|bfloat16|float16] [--quick] [--list]
IBenchmark[] all =
[
    new MatmulBenchmark(),
    new TfidfBenchmark(),
    new Stories260KBenchmark(),
    new EncoderForwardBenchmark(),
    new GenerationBenchmark(),
    new TokenizerBenchmark(),
    new RealTokenizerBenchmark(),
    new QuantizationBenchmark(),
    new FineTuneBenchmark(),
    new ServingBenchmark(),
];

var names = new List<string>();
string device = "auto", dtype = "float32";
var quick = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--device": device = args[++i]; break;
        case "--dtype": dtype = args[++i]; break;
        case "--quick": quick = true; break;
        case "--list":
            foreach (var b in all)
                Console.WriteLine($"{b.Name,-22} {b.Description}");
            return 0;
        case "--help" or "-h":
            Console.WriteLine("SharpTune.Bench [names...] [--device cpu|cuda|auto] [--dtype float32|bfloat16|float16] [--quick] [--list]");
            Console.WriteLine("Runs the named benchmarks (all by default); each line gives SharpTune's figure, the peer's figure measured in the same run, and the ratio.");
            return 0;
        default: names.Add(args[i]); break;
    }
}

var unknown = names.Where(n => all.All(b => b.Name != n)).ToList();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"error: unknown benchmark(s) {string.Join(", ", unknown)}; --list shows them");
    return 2;
}

var context = new BenchContext(TorchRuntime.ResolveDevice(device), TorchRuntime.ResolveDType(dtype), FindRepoRoot(), quick);
Console.WriteLine($"# SharpTune bench on {context.DeviceName} ({context.DTypeName}), libtorch {TorchRuntime.Describe().LibTorchVersion}, {Environment.ProcessorCount} cores");
foreach (var benchmark in all.Where(b => names.Count == 0 || names.Contains(b.Name)))
    foreach (var measure in benchmark.Run(context))
        Console.WriteLine(measure);
return 0;

static string FindRepoRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "SharpTune.sln")) || Directory.Exists(Path.Combine(dir.FullName, "models")))
            return dir.FullName;
    return Directory.GetCurrentDirectory();
}
