using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Tests.Support;
using SharpTune.Tokenizers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpTune.Tests.Quantization;

/// <summary>A real model (stories260K) quantized: perplexity on TinyStories, QLoRA on Dolly, save/load.</summary>
public class Stories260KQuantizationTests(ITestOutputHelper log)
{
    private static string ModelDir => Path.Combine(RepoPaths.Models, "stories260K");

    private static CausalLMModel Load() => Assert.IsAssignableFrom<CausalLMModel>(AutoModel.FromPretrained(ModelDir));

    /// <summary>Perplexity over consecutive 256-token windows of the start of the TinyStories sample.</summary>
    private static double Perplexity(PreTrainedModel model, long[] ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        const int window = 256;
        var windows = ids.Length / window;
        var batch = tensor(ids.Take(windows * window).ToArray()).view(windows, window);
        using var output = model.Forward(new ModelInputs(batch) { Labels = batch });
        return Math.Exp(output.Loss!.item<float>());
    }

    private static long[] TinyStoriesIds()
    {
        var tokenizer = AutoTokenizer.FromPretrained(ModelDir);
        var text = File.ReadAllText(Path.Combine(RepoPaths.Data, "tinystories", "tiny_stories_sample.txt"))[..12_000];
        return tokenizer.EncodeToIds(text).Select(i => (long)i).ToArray();
    }

    [Fact]
    public void Int8PerplexityIsWithinFivePercentOfFloat32AndNf4BeatsFp4()
    {
        var ids = TinyStoriesIds();
        using var reference = Load();
        var fp32 = Perplexity(reference, ids);
        var variants = new (string Name, QuantizationOptions Options, bool Asserted)[]
        {
            // NF4 on this 260K-parameter model costs ~12% perplexity (bitsandbytes' exact algorithm; every layer and module
            // type contributes, blocks of 32 still cost ~9%): measured and reported, not asserted. bf16 compute adds < 0.1%.
            ("nf4", new QuantizationOptions(), false),
            ("nf4 bf16-compute", new QuantizationOptions { ComputeDType = ScalarType.BFloat16 }, false),
            ("nf4+double-quant", new QuantizationOptions { DoubleQuant = true }, false),
            ("fp4", new QuantizationOptions { QuantType = FourBitType.Fp4 }, false),
            ("int8", new QuantizationOptions { Bits = 8 }, true),
        };
        log.WriteLine($"stories260K on {ids.Length} TinyStories tokens: fp32 perplexity {fp32:F4}");
        var failures = new List<string>();
        var perplexities = new Dictionary<string, double>();
        foreach (var (name, options, asserted) in variants)
        {
            using var model = Load();
            Quantizer.Quantize(model, options);
            var footprint = Quantizer.Footprint(model);
            var ppl = perplexities[name] = Perplexity(model, ids);
            log.WriteLine($"{name}: perplexity {ppl:F4} ({100 * (ppl / fp32 - 1):+0.00;-0.00}%), {footprint.Layers} layers, " +
                          $"{footprint.BytesPerParameter:F4} bytes/param ({footprint.BytesPerParameterWithCodeBooks:F4} with code books)");
            if (asserted && Math.Abs(ppl / fp32 - 1) > 0.05)
                failures.Add($"{name}: perplexity {ppl} vs fp32 {fp32}");
        }
        Assert.Empty(failures);
        Assert.True(perplexities["nf4"] < perplexities["fp4"], "NF4 must beat FP4 on normally distributed weights");
        Assert.True(Math.Abs(perplexities["nf4+double-quant"] / perplexities["nf4"] - 1) < 0.01, "double quantization must cost < 1%");
        Assert.True(Math.Abs(perplexities["nf4 bf16-compute"] / perplexities["nf4"] - 1) < 0.01, "bf16 compute must cost < 1%");
    }

    [Fact]
    public void QuantizedCheckpointSavesWithBitsandbytesKeysAndLoadsBackThroughAutoModel()
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var scope = NewDisposeScope();
            var ids = tensor(TinyStoriesIds().Take(64).ToArray()).unsqueeze(0);
            using var model = Load();
            Quantizer.Quantize(model, new QuantizationOptions { DoubleQuant = true, ComputeDType = ScalarType.BFloat16 });
            model.SavePretrained(dir);
            using var expected = model.Forward(new ModelInputs(ids));

            var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
            var quantization = config["quantization_config"]!.AsObject();
            Assert.Equal("bitsandbytes", quantization["quant_method"]!.GetValue<string>());
            Assert.Equal("nf4", quantization["bnb_4bit_quant_type"]!.GetValue<string>());
            Assert.True(quantization["bnb_4bit_use_double_quant"]!.GetValue<bool>());
            Assert.Equal("bfloat16", quantization["bnb_4bit_compute_dtype"]!.GetValue<string>());
            using (var checkpoint = global::SharpTune.IO.Checkpoint.Open(dir))
            {
                const string layer = "model.layers.0.self_attn.q_proj.weight";
                Assert.Equal("U8", checkpoint.Info(layer).DType);
                foreach (var suffix in new[] { "absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state.bitsandbytes__nf4" })
                    Assert.True(checkpoint.Contains($"{layer}.{suffix}"), suffix);
                Assert.Equal("F32", checkpoint.Info("model.embed_tokens.weight").DType); // embeddings stay full precision
            }

            using var loaded = AutoModel.FromPretrained(dir, out var report);
            Assert.True(report.Missing.Count == 0 && report.Unexpected.Count == 0, report.ToString());
            Assert.Equal(35, Quantizer.Footprint(loaded).Layers); // 5 layers x (q, k, v, o, gate, up, down)
            using var actual = loaded.Forward(new ModelInputs(ids));
            Assert.True(BlockwiseQuantizationTests.Same(expected.Logits!, actual.Logits!));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Dolly records as "prompt + answer + eos" token ids, at most <paramref name="maxTokens"/> long.</summary>
    private static List<long[]> DollyRecords(Tokenizer tokenizer, int count, int maxTokens)
    {
        var eos = tokenizer.EosTokenId ?? 2;
        return File.ReadLines(Path.Combine(RepoPaths.Data, "dolly_subset", "dolly_alpaca_format.jsonl"))
            .Take(count)
            .Select(line => JsonNode.Parse(line)!)
            .Select(r => r["prompt"]!.GetValue<string>() + " " + r["answer"]!.GetValue<string>().Replace("###eos_token###", ""))
            .Select(text => tokenizer.EncodeToIds(text).Take(maxTokens - 1).Select(i => (long)i).Append(eos).ToArray())
            .ToList();
    }

    /// <summary>Right-padded ids, attention mask and labels (-100 on padding) for a batch of records.</summary>
    private static (Tensor Ids, Tensor Mask, Tensor Labels) Batch(IReadOnlyList<long[]> batch)
    {
        var length = batch.Max(r => r.Length);
        var ids = stack(batch.Select(r => tensor(r.Concat(Enumerable.Repeat(0L, length - r.Length)).ToArray())).ToArray());
        var mask = stack(batch.Select(r => tensor(Enumerable.Range(0, length).Select(i => i < r.Length ? 1L : 0L).ToArray())).ToArray());
        return (ids, mask, ids.masked_fill(mask.eq(0), -100));
    }

    private static double MeanLoss(PreTrainedModel model, IReadOnlyList<long[]> records)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, mask, labels) = Batch(records);
        using var output = model.Forward(new ModelInputs(ids) { AttentionMask = mask, Labels = labels });
        return output.Loss!.item<float>();
    }

    [Fact]
    public void QLoraTrainingLowersHeldOutLossAndLeavesTheBaseBitIdentical()
    {
        manual_seed(0);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var tokenizer = AutoTokenizer.FromPretrained(ModelDir);
        var records = DollyRecords(tokenizer, 40, 64);
        log.WriteLine($"tokenized in {clock.Elapsed.TotalSeconds:F1} s");
        var (train, heldOut) = (records.Take(32).ToList(), records.Skip(32).ToList());
        using var model = Load();
        Quantizer.Quantize(model, new QuantizationOptions { DoubleQuant = true });
        var peft = PeftModel.Create(model, new LoraConfig { R = 8, LoraAlpha = 16, LoraDropout = 0.1, TargetModules = ["q_proj", "v_proj"] });
        log.WriteLine(peft.TrainableParametersSummary());
        var frozen = model.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter))
            .Concat(model.named_buffers().Select(b => (b.name, b.buffer)))
            .ToDictionary(p => p.name, p => p.Item2.clone());
        Assert.Contains(frozen.Keys, k => k.EndsWith("q_proj.base_layer.weight.absmax", StringComparison.Ordinal));

        log.WriteLine($"quantized + LoRA at {clock.Elapsed.TotalSeconds:F1} s");
        var before = MeanLoss(model, heldOut);
        log.WriteLine($"held-out loss at {clock.Elapsed.TotalSeconds:F1} s");
        using var optimizer = new AdamW8Bit(peft.TrainableParameters(), lr: 1e-2, weight_decay: 0, minEightBitSize: 0);
        model.train();
        for (var step = 0; step < 8; step++)
        {
            using var scope = NewDisposeScope();
            var (ids, mask, labels) = Batch(Enumerable.Range(0, 4).Select(i => train[(step * 4 + i) % train.Count]).ToList());
            optimizer.zero_grad();
            using var output = model.Forward(new ModelInputs(ids) { AttentionMask = mask, Labels = labels });
            output.Loss!.backward();
            if (step == 0) // gradients reach the adapters only
                Assert.All(model.named_parameters(), p => Assert.Equal(p.parameter.requires_grad, p.parameter.grad is not null));
            optimizer.step();
        }
        log.WriteLine($"trained at {clock.Elapsed.TotalSeconds:F1} s");
        model.eval();
        var after = MeanLoss(model, heldOut);
        log.WriteLine($"held-out loss {before:F4} -> {after:F4}; 8-bit optimizer states {optimizer.StateBytes} bytes");
        Assert.True(after < before - 0.05, $"held-out loss {before} -> {after}");
        var current = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
            .Concat(model.named_buffers().Select(b => (b.name, b.buffer)))
            .ToDictionary(p => p.name, p => p.Item2);
        foreach (var (name, original) in frozen)
            Assert.True(BlockwiseQuantizationTests.Same(original, current[name]), $"{name} changed");
    }
}
