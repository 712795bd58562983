using SharpTune.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static SharpTune.Tests.Models.DecoderTestSupport;

namespace SharpTune.Tests.Models;

/// <summary>Every decoder fixture against transformers' outputs, and the KV-cache paths against full forwards.</summary>
public class DecoderParityTests(ITestOutputHelper log)
{
    public static TheoryData<string> Fixtures => ["llama-lm", "qwen2-lm", "phi-lm", "gpt2-lm", "gptneox-lm"];

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void PaddedBatchMatchesTransformers(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture));
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        using var output = model.Forward(new ModelInputs(reference["input_ids"])
        {
            AttentionMask = reference["attention_mask"],
            OutputHiddenStates = true,
        });
        Assert.Equal(model.NumLayers + 1, output.HiddenStates!.Count);
        var errors = new Dictionary<string, double>
        {
            ["logits"] = MaxAbsError(output.Logits!, reference["logits"]),
            ["last_hidden_state"] = MaxAbsError(output.LastHiddenState, reference["hidden_states_last"]),
            ["hidden_states_first"] = MaxAbsError(output.HiddenStates[0], reference["hidden_states_first"]),
            ["hidden_states_last"] = MaxAbsError(output.HiddenStates[^1], reference["hidden_states_last"]),
        };
        log.WriteLine($"{fixture}: " + string.Join(", ", errors.Select(e => $"{e.Key} {e.Value:E2}")));
        foreach (var (name, error) in errors)
            Assert.True(error <= 1e-4, $"{fixture} {name} max abs error {error}");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TokenByTokenWithCacheEqualsFullForward(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture));
        var ids = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"))["input_ids"];
        using var full = model.Forward(new ModelInputs(ids));
        using var cache = model.CreateCache(ids.shape[1]);
        // 3 tokens into the empty cache, 2 more on top of them (a multi-token step after cached ones), then one at a time.
        var steps = new List<Tensor>();
        for (long start = 0, step = 3; start < ids.shape[1]; start += step, step = start == 3 ? 2 : 1)
        {
            using var output = model.Forward(new ModelInputs(ids.narrow(1, start, step)) { Cache = cache });
            steps.Add(output.Logits!.clone());
        }
        Assert.Equal(ids.shape[1], cache.Length);
        var error = MaxAbsError(cat(steps, 1), full.Logits!);
        log.WriteLine($"{fixture}: cached vs full logits max abs error {error:E2}");
        Assert.True(error <= 1e-4, $"{fixture}: cached decoding differs from the full forward by {error}");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void LeftPaddedBatchWithPositionIdsAndCacheMatchesUnpadded(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture));
        var prompt = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"))["input_ids"][0].narrow(0, 0, 6);
        const int pad = 3;
        // Row 0: the prompt; row 1: its last 3 tokens left-padded by 3; then 2 decoding steps with the cache.
        var padded = stack([prompt, cat([zeros(pad, ScalarType.Int64), prompt.narrow(0, pad, 6 - pad)])]);
        var mask = stack([ones(6, ScalarType.Int64), cat([zeros(pad, ScalarType.Int64), ones(6 - pad, ScalarType.Int64)])]);
        var next = tensor(new long[] { 7, 9 }).reshape(1, 2).expand(2, 2);
        using var cache = model.CreateCache(8);
        var positions = (mask.cumsum(1) - 1).clamp_min(0);
        using var first = model.Forward(new ModelInputs(padded) { AttentionMask = mask, PositionIds = positions, Cache = cache });
        var logits = new List<Tensor> { first.Logits! };
        for (var i = 0; i < 2; i++)
        {
            mask = cat([mask, ones(2, 1, ScalarType.Int64)], 1);
            positions = positions.narrow(1, positions.shape[1] - 1, 1) + 1;
            var output = model.Forward(new ModelInputs(next.narrow(1, i, 1)) { AttentionMask = mask, PositionIds = positions, Cache = cache });
            logits.Add(output.Logits!);
        }
        var batched = cat(logits, 1);

        foreach (var (row, skip) in new[] { (0, 0), (1, pad) })
        {
            var alone = cat([padded[row].narrow(0, skip, 6 - skip), next[0]]).unsqueeze(0);
            using var expected = model.Forward(new ModelInputs(alone));
            var error = MaxAbsError(batched[row].narrow(0, skip, 8 - skip), expected.Logits![0]);
            log.WriteLine($"{fixture}: row {row} left-padded vs alone max abs error {error:E2}");
            Assert.True(error <= 1e-4, $"{fixture}: row {row} differs from its unpadded forward by {error}");
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void GreedyDecodingWithCacheMatchesTransformersGenerate(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(ModelDir(fixture));
        var reference = LoadReference(Path.Combine(ModelDir(fixture), "reference.safetensors"));
        var expected = reference["generate_greedy"][0].data<long>().ToArray();
        var tokens = GreedyWithCache(model, reference["generate_prompt"][0].data<long>().ToArray(), expected.Length);
        Assert.Equal(expected, tokens);
    }
}
