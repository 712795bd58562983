using System.Diagnostics;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Bench.Benchmarks;

/// <summary>Inference throughput of the embedded mini-bert encoder (BertModel, 4 layers, hidden 256) at batch 32 × 128
/// tokens, against transformers loading the same directory in the same run.</summary>
public sealed class EncoderForwardBenchmark : IBenchmark
{
    private const int Batch = 32;
    private const int Tokens = 128;

    public string Name => "encoder-forward";
    public string Description => "mini-bert BertModel forward, batch 32 x 128 tokens: sequences/s, SharpTune vs transformers.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var directory = context.RepoPath("models", "mini-bert");
        var repeats = context.Quick ? 2 : 10;
        double seconds;
        using (var model = AutoModel.FromPretrained(directory, ModelTask.Base, context.Device, context.DType))
        using (NewDisposeScope())
        using (no_grad())
        {
            var generator = new TorchSharp.torch.Generator(seed: 0);
            var ids = randint(1000, 30000, [Batch, Tokens], generator: generator, dtype: ScalarType.Int64).to(context.Device);
            var inputs = new ModelInputs(ids) { AttentionMask = ones_like(ids) };
            model.Forward(inputs).Dispose();
            Synchronize(context);
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < repeats; i++)
                model.Forward(inputs).Dispose();
            Synchronize(context);
            seconds = watch.Elapsed.TotalSeconds / repeats;
        }
        var peer = PythonPeer.TryRun($$"""
            import json, time, torch
            from transformers import AutoModel
            dev = "{{context.DeviceName}}"; dt = getattr(torch, "{{context.DTypeName}}")
            torch.set_num_threads({{get_num_threads()}})
            model = AutoModel.from_pretrained("{{directory}}", dtype=dt).to(dev).eval()
            ids = torch.randint(1000, 30000, ({{Batch}}, {{Tokens}}), generator=torch.Generator().manual_seed(0)).to(dev)
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask)
                torch.cuda.synchronize() if dev == "cuda" else None
                t = time.perf_counter()
                for _ in range({{repeats}}): model(input_ids=ids, attention_mask=mask)
                torch.cuda.synchronize() if dev == "cuda" else None
            print(json.dumps({"seconds": (time.perf_counter() - t) / {{repeats}}}))
            """);
        var peerSeconds = peer?.GetProperty("seconds").GetDouble();
        yield return new Measure(Name, $"{context.DeviceName} {context.DTypeName} mini-bert {Batch}x{Tokens}", "seq/s", Batch / seconds,
            "transformers", peerSeconds is { } s ? Batch / s : null, HigherIsBetter: true);
    }

    private static void Synchronize(BenchContext context)
    {
        if (context.DeviceName == "cuda")
            cuda.synchronize();
    }
}
