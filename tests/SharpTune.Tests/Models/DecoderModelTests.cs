using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static SharpTune.Tests.Models.DecoderTestSupport;

namespace SharpTune.Tests.Models;

/// <summary>Heads, loss, precision, saving and tensor hygiene of the decoder models.</summary>
public class DecoderModelTests(ITestOutputHelper log)
{
    public static TheoryData<string> Fixtures => DecoderParityTests.Fixtures;

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void PaddingMaskChangesPaddedPositions(string fixture)
    {
        // Guards the parity test against passing vacuously: without the mask, the right-padded row's padded
        // positions attend to padding tokens and move away from transformers' logits.
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture));
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        using var unmasked = model.Forward(new ModelInputs(reference["input_ids"]));
        var padded = reference["attention_mask"].eq(0);
        var error = MaxAbsError(unmasked.Logits![padded], reference["logits"][padded]);
        Assert.True(error > 1e-3, $"{fixture}: padded positions unaffected by the mask ({error})");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void BaseModelLoadsFromTheCausalLMCheckpoint(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(ModelDir(fixture), out var report, ModelTask.Base);
        Assert.IsAssignableFrom<SharpTune.Models.Blocks.DecoderModel>(model);
        Assert.Empty(report.Missing);
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        using var output = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] });
        Assert.Null(output.Logits);
        Assert.True(MaxAbsError(output.LastHiddenState, reference["hidden_states_last"]) <= 1e-4);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void LossIsShiftedCrossEntropyIgnoringMinus100(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture));
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        var ids = reference["input_ids"];
        var labels = ids.masked_fill(reference["attention_mask"].eq(0), -100);
        labels[0, 5] = tensor(-100L);
        using var output = model.Forward(new ModelInputs(ids) { AttentionMask = reference["attention_mask"], Labels = labels });

        // Expected from transformers' logits: token t predicts label t+1; -100 labels are skipped; mean over the rest.
        var logProbabilities = reference["logits"].to(ScalarType.Float64).log_softmax(-1).data<double>().ToArray();
        var labelIds = labels.data<long>().ToArray();
        var (batch, length, vocab) = ((int)ids.shape[0], (int)ids.shape[1], (int)reference["logits"].shape[2]);
        double total = 0;
        var count = 0;
        for (var b = 0; b < batch; b++)
            for (var t = 0; t < length - 1; t++)
            {
                var target = labelIds[b * length + t + 1];
                if (target == -100)
                    continue;
                total -= logProbabilities[(b * length + t) * vocab + target];
                count++;
            }
        var loss = output.Loss!.item<float>();
        log.WriteLine($"{fixture}: loss {loss} expected {total / count}");
        Assert.Equal(total / count, loss, 1e-5);
    }

    [Fact]
    public void LossBackpropagatesToEveryParameter()
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir("llama-lm"));
        model.train();
        var ids = LoadReference(Path.Combine(ModelDir("llama-lm"), "reference.safetensors"))["input_ids"];
        using var output = model.Forward(new ModelInputs(ids) { Labels = ids });
        output.Loss!.backward();
        Assert.All(model.named_parameters(), p => Assert.True(p.parameter.grad is { } g && g.abs().sum().item<float>() > 0, p.name));
    }

    public static TheoryData<string, ScalarType> ReducedPrecisionCases()
    {
        var cases = new TheoryData<string, ScalarType>();
        foreach (var fixture in new[] { "llama-lm", "qwen2-lm", "phi-lm", "gpt2-lm", "gptneox-lm" })
        {
            cases.Add(fixture, ScalarType.BFloat16);
            cases.Add(fixture, ScalarType.Float16);
        }
        return cases;
    }

    // Stated tolerances against the fp32 reference. bf16 keeps 8 significant bits (rounding 2^-9 relative per op):
    // through 2 layers and a 1000-way head these models' logits (|logit| < 1.2) stay within 2e-2, hidden states
    // (|h| < 3.5) within 5e-2 (measured: ~5e-3 and ~2.7e-2). fp16 keeps 11 bits, 8× finer: 3e-3 and 7e-3.
    [Theory]
    [MemberData(nameof(ReducedPrecisionCases))]
    public void ReducedPrecisionMatchesFloat32ReferenceWithinStatedTolerance(string fixture, ScalarType dtype)
    {
        var (logitTolerance, hiddenTolerance) = dtype == ScalarType.BFloat16 ? (2e-2, 5e-2) : (3e-3, 7e-3);
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture), dtype);
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        using var output = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] });
        Assert.Equal(dtype, output.Logits!.dtype);
        var logits = MaxAbsError(output.Logits, reference["logits"]);
        var hidden = MaxAbsError(output.LastHiddenState, reference["hidden_states_last"]);
        log.WriteLine($"{fixture} {dtype}: logits max abs error {logits:E2} (max |logit| {reference["logits"].abs().max().item<float>():F2}), last hidden {hidden:E2} (max {reference["hidden_states_last"].abs().max().item<float>():F2})");
        Assert.True(logits <= logitTolerance, $"{fixture} {dtype}: logits error {logits}");
        Assert.True(hidden <= hiddenTolerance, $"{fixture} {dtype}: hidden state error {hidden}");
    }

    [Theory]
    [InlineData("qwen2-lm", "lm_head.weight")]
    [InlineData("gpt2-lm", "lm_head.weight")]
    [InlineData("gptneox-lm", null)]
    public void SavePretrainedReloadsToIdenticalLogitsWithTransformersKeys(string fixture, string? tiedKey)
    {
        using var scope = NewDisposeScope();
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            using var model = LoadCausalLM(ModelDir(fixture));
            model.SavePretrained(directory);
            using (var original = Checkpoint.Open(ModelDir(fixture)))
            using (var saved = Checkpoint.Open(directory))
                Assert.Equal(original.Names.Order(), saved.Names.Order());
            if (tiedKey is not null)
                Assert.Contains(tiedKey, model.TiedParameterNames);
            using var reloaded = LoadCausalLM(directory);
            var ids = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"))["input_ids"];
            using var before = model.Forward(new ModelInputs(ids));
            using var after = reloaded.Forward(new ModelInputs(ids));
            Assert.Equal(0.0, MaxAbsError(after.Logits!, before.Logits!));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Gpt2CheckpointInTheOriginalLayoutLoads()
    {
        // openai-community/gpt2 stores keys without "transformer." and carries attn.bias/attn.masked_bias mask buffers.
        using var scope = NewDisposeScope();
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var fixture = ModelDir("gpt2-lm");
            File.Copy(Path.Combine(fixture, "config.json"), Path.Combine(directory, "config.json"));
            using (var original = Checkpoint.Open(fixture))
            {
                var tensors = original.Names.Select(n => new KeyValuePair<string, Tensor>(n["transformer.".Length..], original.Load(n))).ToList();
                for (var layer = 0; layer < 2; layer++)
                {
                    tensors.Add(new($"h.{layer}.attn.bias", ones(1, 1, 64, 64).tril()));
                    tensors.Add(new($"h.{layer}.attn.masked_bias", tensor(-1e4f)));
                }
                SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"), tensors);
            }
            using var model = LoadCausalLM(directory);
            var reference = LoadReference(Path.Combine(fixture, "reference.safetensors"));
            using var output = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] });
            Assert.True(MaxAbsError(output.Logits!, reference["logits"]) <= 1e-4);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void RepeatedCachedDecodingLeaksNoTensors()
    {
        using var model = LoadCausalLM(ModelDir("gptneox-lm"));
        var ids = LoadReference(Path.Combine(ModelDir("gptneox-lm"), "reference.safetensors"))["input_ids"];
        long Decode()
        {
            using var cache = model.CreateCache(ids.shape[1]);
            for (var t = 0; t < ids.shape[1]; t++)
            {
                using var step = ids.narrow(1, t, 1);
                using var mask = ones(ids.shape[0], t + 1, ScalarType.Int64);
                using var output = model.Forward(new ModelInputs(step) { Cache = cache, AttentionMask = mask, OutputHiddenStates = true });
            }
            return DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }
        var afterFirst = Decode();
        for (var i = 0; i < 5; i++)
            Decode();
        Assert.Equal(afterFirst, Decode());
    }
}
