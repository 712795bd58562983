using System.Diagnostics;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Bench.Benchmarks;

/// <summary>stories260K (Llama, 5 layers, GQA) forward throughput on a batch, and greedy decoding speed with the
/// KV cache, against transformers on the same machine when Python has it.</summary>
public sealed class Stories260KBenchmark : IBenchmark
{
    private const int Batch = 8;
    private const int Length = 128;
    private const int NewTokens = 128;

    public string Name => "stories260k";
    public string Description => $"stories260K forward tokens/s (batch {Batch}×{Length}) and cached greedy decoding tokens/s ({NewTokens} tokens), vs transformers.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var directory = context.RepoPath("models", "stories260K");
        var repeats = context.Quick ? 3 : 20;
        double forwardSeconds, decodeSeconds, recomputeSeconds;
        using (var model = AutoModel.FromPretrained(directory, ModelTask.CausalLM, context.Device, context.DType))
        using (no_grad())
        {
            var causal = (ICausalLM)model;
            using var ids = randint(3, causal.VocabSize, [Batch, Length], ScalarType.Int64, context.Device);
            forwardSeconds = Time(context, repeats, () =>
            {
                using var output = model.Forward(new ModelInputs(ids));
            });
            decodeSeconds = Time(context, Math.Max(1, repeats / 4), () => Decode(causal, context.Device, useCache: true));
            recomputeSeconds = Time(context, 1, () => Decode(causal, context.Device, useCache: false));
        }

        var peer = PythonPeer.TryRun($$"""
            import json, time, torch
            from transformers import AutoModelForCausalLM
            dev = "{{context.DeviceName}}"; dt = getattr(torch, "{{context.DTypeName}}")
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            model = AutoModelForCausalLM.from_pretrained("{{directory}}", dtype=dt).to(dev).eval()
            ids = torch.randint(3, model.config.vocab_size, ({{Batch}}, {{Length}}), device=dev)
            def timed(repeats, fn):
                fn(); sync(); t = time.perf_counter()
                for _ in range(repeats): fn()
                sync(); return (time.perf_counter() - t) / repeats
            with torch.no_grad():
                forward = timed({{repeats}}, lambda: model(ids))
                prompt = torch.tensor([[1]], device=dev)
                decode = timed(max(1, {{repeats}} // 4), lambda: model.generate(prompt, max_new_tokens={{NewTokens}}, min_new_tokens={{NewTokens}}, do_sample=False))
            print(json.dumps({"forward": forward, "decode": decode}))
            """);
        var setting = $"{context.DeviceName} {context.DTypeName}";
        yield return new Measure(Name, $"forward {Batch}x{Length} {setting}", "tokens/s", Batch * Length / forwardSeconds,
            "transformers", peer?.GetProperty("forward").GetDouble() is { } f ? Batch * Length / f : null, HigherIsBetter: true);
        yield return new Measure(Name, $"greedy decode {NewTokens} {setting}", "tokens/s", NewTokens / decodeSeconds,
            "transformers generate", peer?.GetProperty("decode").GetDouble() is { } d ? NewTokens / d : null, HigherIsBetter: true);
        yield return new Measure(Name, $"greedy decode {NewTokens} {setting}", "tokens/s", NewTokens / decodeSeconds,
            "SharpTune without KV cache", NewTokens / recomputeSeconds, HigherIsBetter: true);
    }

    // Greedy decoding of NewTokens tokens after BOS (EOS ignored, as min_new_tokens): with the cache one pass per
    // new token; without it, every step re-runs the whole sequence so far.
    private static void Decode(ICausalLM model, Device device, bool useCache)
    {
        using var scope = NewDisposeScope();
        using var cache = useCache ? model.CreateCache(NewTokens + 1) : null;
        var sequence = tensor(new long[] { 1 }, device: device).reshape(1, 1);
        var input = sequence;
        for (var i = 0; i < NewTokens; i++)
        {
            using var output = model.Forward(new ModelInputs(input) { Cache = cache });
            var next = output.Logits!.select(1, -1).argmax(-1, keepdim: true);
            sequence = cat([sequence, next], 1);
            input = useCache ? next : sequence;
        }
    }

    private static double Time(BenchContext context, int repeats, Action run)
    {
        run();
        Synchronize(context);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < repeats; i++)
            run();
        Synchronize(context);
        return watch.Elapsed.TotalSeconds / repeats;
    }

    private static void Synchronize(BenchContext context)
    {
        if (context.DeviceName == "cuda")
            cuda.synchronize();
    }
}
