using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Quantization;
using SharpTune.Tokenizers;
using static TorchSharp.torch;

namespace SharpTune.Bench.Benchmarks;

/// <summary>Weight bytes, load time, forward latency (batch 1 × 128) and perplexity of stories260K and of a Phi-2-shaped
/// random model in full precision and quantized (bitsandbytes formats), against transformers + bitsandbytes on the same
/// machine when Python has them. Quantized variants are saved with <c>sharptune quantize</c>'s layout and timed loading
/// that checkpoint; the peer quantizes the float32 checkpoint while loading (its only path).</summary>
public sealed class QuantizationBenchmark : IBenchmark
{
    private const int Length = 128;
    private const int Window = 256;
    private const int PerplexityChars = 100_000;

    /// <summary>A precision: a load dtype for the full-precision ones, quantization options for the others.</summary>
    private sealed record Variant(string Name, ScalarType DType, QuantizationOptions? Options);

    private static readonly Variant[] Variants =
    [
        new("fp32", ScalarType.Float32, null),
        new("bf16", ScalarType.BFloat16, null),
        new("nf4", ScalarType.Float32, new QuantizationOptions()),
        new("nf4 bf16-compute", ScalarType.Float32, new QuantizationOptions { ComputeDType = ScalarType.BFloat16 }),
        new("nf4+double-quant", ScalarType.Float32, new QuantizationOptions { DoubleQuant = true }),
        new("fp4", ScalarType.Float32, new QuantizationOptions { QuantType = FourBitType.Fp4 }),
        new("int8", ScalarType.Float32, new QuantizationOptions { Bits = 8 }),
    ];

    public string Name => "quantization";

    public string Description => "fp32/bf16/NF4/NF4+double-quant/FP4/int8: weight MB, load s, forward ms (1×128), perplexity; " +
                                 "stories260K and a Phi-2-shaped random model (2 layers on CPU or --quick, 32 on CUDA), vs bitsandbytes.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var root = Path.Combine(Path.GetTempPath(), $"sharptune-bench-quant-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        try
        {
            var stories = context.RepoPath("models", "stories260K");
            var text = File.ReadAllText(context.RepoPath("data", "tinystories", "tiny_stories_sample.txt"));
            var ids = AutoTokenizer.FromPretrained(stories).EncodeToIds(text[..Math.Min(PerplexityChars, text.Length)]).Select(i => (long)i).ToArray();
            foreach (var measure in RunModel(context, "stories260K", stories, ids, root))
                yield return measure;

            var layers = context.DeviceName == "cuda" && !context.Quick ? 32 : 2;
            var phi = Path.Combine(root, "phi2-shape");
            SaveRandomPhi2(phi, layers);
            foreach (var measure in RunModel(context, $"phi2-shape L={layers}", phi, null, root))
                yield return measure;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static IEnumerable<Measure> RunModel(BenchContext context, string label, string directory, long[]? ids, string root)
    {
        var repeats = context.Quick ? 3 : 10;
        var idsFile = Path.Combine(root, "ids.json");
        if (ids is not null)
            File.WriteAllText(idsFile, JsonSerializer.Serialize(ids));
        var peer = PythonPeer.TryRun(PeerScript(context, directory, ids is null ? null : idsFile, repeats));
        foreach (var variant in Variants)
        {
            var source = directory;
            if (variant.Options is { } options)
            {
                source = Path.Combine(root, $"{Path.GetFileName(directory)}-{variant.Name.Replace(' ', '-')}");
                using var full = AutoModel.FromPretrained(directory, ModelTask.CausalLM);
                Quantizer.Quantize(full, options);
                ModelConversion.Save(full, directory, source);
            }
            var watch = Stopwatch.StartNew();
            using var model = AutoModel.FromPretrained(source, ModelTask.CausalLM, context.Device, variant.Options is null ? variant.DType : null);
            Synchronize(context);
            var loadSeconds = watch.Elapsed.TotalSeconds;
            var bytes = WeightBytes(model);
            var forwardMs = ForwardMilliseconds(context, model, repeats);
            var perplexity = ids is null ? (double?)null : Perplexity(model, ids, context.Device);
            if (source != directory)
                Directory.Delete(source, recursive: true);

            var result = peer is { } p && p.TryGetProperty(variant.Name, out var r) ? r : (JsonElement?)null;
            double? Peer(string key) => result is { } e && e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
            var name = $"{label} {variant.Name}";
            yield return new Measure("quantization", $"{name} weights", "MB", bytes / 1e6, "transformers+bitsandbytes", Peer("bytes") / 1e6, HigherIsBetter: false);
            yield return new Measure("quantization", $"{name} load", "s", loadSeconds, "bnb (quantizes on load)", Peer("load"), HigherIsBetter: false);
            yield return new Measure("quantization", $"{name} forward 1x{Length} {context.DeviceName}", "ms", forwardMs, "transformers+bitsandbytes", Peer("forward") * 1e3, HigherIsBetter: false);
            if (perplexity is { } ppl)
                yield return new Measure("quantization", $"{name} perplexity", "", ppl, "transformers+bitsandbytes", Peer("perplexity"), HigherIsBetter: false);
        }
    }

    /// <summary>A randomly initialised Phi with phi-2's shape (hidden 2560, 32 heads, intermediate 10240, vocab 51200,
    /// partial rotary 0.4) and <paramref name="layers"/> decoder layers, saved in float32.</summary>
    private static void SaveRandomPhi2(string directory, int layers)
    {
        var config = new PretrainedConfig(new JsonObject
        {
            ["architectures"] = new JsonArray("PhiForCausalLM"),
            ["model_type"] = "phi",
            ["hidden_size"] = 2560,
            ["intermediate_size"] = 10240,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = 32,
            ["num_key_value_heads"] = 32,
            ["vocab_size"] = 51200,
            ["max_position_embeddings"] = 2048,
            ["partial_rotary_factor"] = 0.4,
            ["rope_theta"] = 10000.0,
            ["hidden_act"] = "gelu_new",
            ["layer_norm_eps"] = 1e-5,
            ["initializer_range"] = 0.02,
            ["tie_word_embeddings"] = false,
            ["dtype"] = "float32",
        });
        manual_seed(0);
        using var model = AutoModel.FromConfig(config, ModelTask.CausalLM);
        model.InitializeWeights();
        model.SavePretrained(directory);
    }

    /// <summary>Bytes of every distinct parameter and buffer (what transformers' get_memory_footprint counts).</summary>
    private static long WeightBytes(nn.Module model)
    {
        var seen = new HashSet<IntPtr>();
        return model.parameters().Cast<Tensor>().Concat(model.buffers())
            .Where(t => seen.Add(t.Handle))
            .Sum(t => t.numel() * t.ElementSize);
    }

    private static double ForwardMilliseconds(BenchContext context, PreTrainedModel model, int repeats)
    {
        using var noGrad = no_grad();
        using var ids = randint(3, ((ICausalLM)model).VocabSize, [1, Length], ScalarType.Int64, context.Device);
        void Run()
        {
            using var output = model.Forward(new ModelInputs(ids));
        }
        Run();
        Synchronize(context);
        var times = new List<double>(repeats);
        for (var i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            Run();
            Synchronize(context);
            times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return times.Order().ElementAt(times.Count / 2); // median: robust to a busy machine
    }

    /// <summary>exp(mean next-token loss) over consecutive 256-token windows (the peer uses the same windows).</summary>
    private static double Perplexity(PreTrainedModel model, long[] ids, Device device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var windows = ids.Length / Window;
        var batch = tensor(ids.Take(windows * Window).ToArray(), device: device).view(windows, Window);
        using var output = model.Forward(new ModelInputs(batch) { Labels = batch });
        return Math.Exp(output.Loss!.to(ScalarType.Float32).item<float>());
    }

    private static void Synchronize(BenchContext context)
    {
        if (context.DeviceName == "cuda")
            cuda.synchronize();
    }

    private static string PeerScript(BenchContext context, string directory, string? idsFile, int repeats) => $$"""
        import json, time, torch, bitsandbytes
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        dev = "{{context.DeviceName}}"
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        ids_file = {{(idsFile is null ? "None" : $"\"{idsFile}\"")}}
        def bnb(**kw): return BitsAndBytesConfig(**kw)
        f32, b16 = torch.float32, torch.bfloat16
        variants = {
            "fp32": dict(dtype=f32), "bf16": dict(dtype=b16),
            "nf4": dict(dtype=f32, quantization_config=bnb(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=f32)),
            "nf4 bf16-compute": dict(dtype=f32, quantization_config=bnb(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=b16)),
            "nf4+double-quant": dict(dtype=f32, quantization_config=bnb(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=f32)),
            "fp4": dict(dtype=f32, quantization_config=bnb(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=f32)),
            "int8": dict(dtype=f32, quantization_config=bnb(load_in_8bit=True)),
        }
        out = {}
        for name, kw in variants.items():
            try:
                t = time.perf_counter()
                model = AutoModelForCausalLM.from_pretrained("{{directory}}", device_map=dev, **kw).eval()
                sync(); load = time.perf_counter() - t
                r = {"load": load, "bytes": model.get_memory_footprint()}
                with torch.no_grad():
                    ids = torch.randint(3, model.config.vocab_size, (1, {{Length}}), device=dev)
                    model(ids); sync(); times = []
                    for _ in range({{repeats}}):
                        t = time.perf_counter(); model(ids); sync(); times.append(time.perf_counter() - t)
                    r["forward"] = sorted(times)[len(times) // 2]
                    if ids_file:
                        tokens = json.load(open(ids_file)); w = len(tokens) // {{Window}}
                        batch = torch.tensor(tokens[: w * {{Window}}], device=dev).view(w, {{Window}})
                        r["perplexity"] = torch.exp(model(batch, labels=batch).loss.float()).item()
                out[name] = r
                del model
            except Exception as e:
                print(f"{name}: {e}")
        print(json.dumps(out))
        """;
}
