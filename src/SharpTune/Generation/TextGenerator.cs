using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Generation;

/// <summary>Why a sequence stopped.</summary>
public enum FinishReason
{
    /// <summary>It produced an end-of-sequence id.</summary>
    EndOfSequence,
    /// <summary>Its generated text contains a stop string.</summary>
    StopString,
    /// <summary>It reached max_new_tokens / max_length.</summary>
    Length,
}

/// <summary>One generated token of one sequence, with the text it adds (empty while a character is incomplete).</summary>
public sealed record GenerationStep(int Sequence, long TokenId, string Text);

/// <summary>What <see cref="TextGenerator.Generate"/> produced: per prompt, the prompt and generated ids (no padding).</summary>
public sealed record GenerationResult(
    IReadOnlyList<IReadOnlyList<long>> Sequences,
    IReadOnlyList<int> PromptLengths,
    IReadOnlyList<FinishReason> FinishReasons,
    TimeSpan PrefillTime,
    TimeSpan DecodeTime)
{
    public IReadOnlyList<long> Generated(int sequence) => Sequences[sequence].Skip(PromptLengths[sequence]).ToList();

    public int GeneratedTokenCount => Sequences.Select((s, i) => s.Count - PromptLengths[i]).Sum();

    /// <summary>Generated tokens (all sequences) per second of prefill + decode.</summary>
    public double TokensPerSecond => GeneratedTokenCount / Math.Max(1e-9, (PrefillTime + DecodeTime).TotalSeconds);
}

/// <summary>
/// Auto-regressive generation with any causal LM of the model core, like transformers' <c>generate()</c>:
/// prompts of different lengths are left-padded into one batch (position ids count real tokens only, the
/// attention mask hides padding), one <see cref="KeyValueCache"/> is allocated for prompt + new tokens, the
/// prompt is run once (prefill) and then one token per step (decode), greedy or sampled per
/// <see cref="GenerationConfig"/>. Text decoding (for stop strings and streaming) comes from the tokenizer's
/// decode function (special tokens skipped).
/// </summary>
public sealed class TextGenerator(ICausalLM model, Func<IReadOnlyList<long>, string>? decode = null)
{
    public ICausalLM Model { get; } = model;

    /// <summary>Decode single-prompt steps after the prefill with <see cref="CpuDecoder"/> where it applies (Llama-family
    /// models on the CPU in fp32, int8 or 4-bit); false keeps every step in libtorch. Same ids either way (parity-tested).</summary>
    public bool FusedCpuDecoding { get; init; } = true;

    /// <summary>Generates a continuation of each prompt. <paramref name="onStep"/> receives every token as it is chosen.</summary>
    public GenerationResult Generate(IReadOnlyList<IReadOnlyList<long>> prompts, GenerationConfig config,
        Action<GenerationStep>? onStep = null, CancellationToken cancellationToken = default)
    {
        config.Validate();
        if (prompts.Count == 0)
            throw new ArgumentException("no prompts to generate from");
        if (prompts.Any(p => p.Count == 0))
            throw new ArgumentException("a prompt is empty: give at least one token (e.g. the BOS id)");
        var vocabSize = Model.VocabSize;
        foreach (var id in prompts.SelectMany(p => p))
            if (id < 0 || id >= vocabSize)
                throw new ArgumentException($"prompt token id {id} is outside the model's vocabulary (ids 0 to {vocabSize - 1})");
        if (config.StopStrings.Count > 0 && decode is null)
            throw new ArgumentException("stop strings need a tokenizer to decode the generated text");

        var batch = prompts.Count;
        var promptLength = prompts.Max(p => p.Count);
        var budget = config.NewTokenBudget(promptLength);
        var padId = config.PadTokenId ?? (config.EosTokenIds.Count > 0 ? config.EosTokenIds[0] : 0);
        var eos = config.EosTokenIds.ToHashSet();
        var processors = LogitsProcessors.For(config);
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        var finish = new FinishReason?[batch];
        var streams = Enumerable.Range(0, batch).Select(_ => new TextStream(decode)).ToArray();
        var device = Model is nn.Module module ? module.parameters().First().device : CPU;
        if (promptLength + budget > Model.MaxPositions)
            throw new ArgumentException($"prompt ({promptLength} tokens) + {budget} new tokens exceed the model's {Model.MaxPositions} positions (max_position_embeddings): generate fewer tokens");

        var prefillWatch = Stopwatch.StartNew();
        var decodeWatch = new Stopwatch();
        if (budget == 0)
            return new GenerationResult(sequences, prompts.Select(p => p.Count).ToList(), Enumerable.Repeat(FinishReason.Length, batch).ToList(), TimeSpan.Zero, TimeSpan.Zero);

        using var noGrad = no_grad();
        using var cache = Model.CreateCache(promptLength + budget);
        using var generator = config.DoSample && config.Seed is { } seed ? new Generator((ulong)seed, device) : null;
        // Every token (left-padded prompt, then generated) and its mask, pre-allocated for the whole run.
        using var tokens = full(batch, promptLength + budget, padId, ScalarType.Int64, device);
        using var mask = zeros(batch, promptLength + budget, ScalarType.Int64, device);
        using (var prompt = tensor(prompts.SelectMany(p => Enumerable.Repeat(padId, promptLength - p.Count).Concat(p)).ToArray(), [batch, promptLength]))
        using (var promptMask = tensor(prompts.SelectMany(p => Enumerable.Repeat(0L, promptLength - p.Count).Concat(Enumerable.Repeat(1L, p.Count))).ToArray(), [batch, promptLength]))
        using (var promptSlot = tokens.narrow(1, 0, promptLength))
        using (var promptMaskSlot = mask.narrow(1, 0, promptLength))
        {
            promptSlot.copy_(prompt);
            promptMaskSlot.copy_(promptMask);
        }

        var length = promptLength;
        using var scope = NewDisposeScope();
        // Positions count real tokens only, so a left-padded prompt sees the positions it would alone.
        var stepInput = tokens.narrow(1, 0, promptLength);
        var positions = mask.narrow(1, 0, promptLength).cumsum(-1).sub_(1).clamp_min_(0);
        // Unpadded prompts need neither mask nor positions: causal attention and the positions the model counts from
        // the cache say the same, and no layer checks a mask or rebuilds rotary angles per step.
        var padded = prompts.Any(p => p.Count < promptLength);
        CpuDecoder? fused = null;
        // Processors and sampling read the token/mask tensors; plain greedy fused decoding never touches them.
        var needsTensors = true;
        try
        {
            for (var step = 0; step < budget; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // A view made only where a step reads it: fused greedy steps make no libtorch call at all.
                Tensor ActiveMask() => mask.narrow(1, 0, length);
                Tensor? scores = null;
                long[] chosen;
                if (fused is not null)
                {
                    var logits = fused.Step(sequences[0][^1]);
                    if (needsTensors)
                        scores = tensor(logits.ToArray(), [1, logits.Length]);
                    chosen = scores is null ? [ArgMax(logits)] : [];
                }
                else
                {
                    using var output = Model.Forward(new ModelInputs(stepInput) { AttentionMask = padded ? ActiveMask() : null, PositionIds = padded ? positions : null, Cache = cache });
                    var logits = output.Logits ?? throw new InvalidOperationException("the model returned no logits");
                    scores = logits.select(1, -1).to(ScalarType.Float32);
                    chosen = [];
                }
                if (scores is not null)
                {
                    scores = LogitsProcessors.Apply(processors, tokens.narrow(1, 0, length), ActiveMask(), scores);
                    var next = config.DoSample
                        ? multinomial(scores.softmax(-1), 1, generator: generator).squeeze(-1)
                        : scores.argmax(-1);
                    chosen = next.cpu().data<long>().ToArray();
                }

                for (var i = 0; i < batch; i++)
                {
                    if (finish[i] is not null)
                    {
                        chosen[i] = padId; // finished rows keep running in the batch; their tokens are padding
                        continue;
                    }
                    sequences[i].Add(chosen[i]);
                    var text = streams[i].Push(sequences[i], prompts[i].Count);
                    onStep?.Invoke(new GenerationStep(i, chosen[i], text));
                    if (eos.Contains(chosen[i]))
                        finish[i] = FinishReason.EndOfSequence;
                    else if (config.StopStrings.Count > 0 && config.StopStrings.Any(streams[i].Text.Contains))
                        finish[i] = FinishReason.StopString;
                }
                if (step == 0)
                {
                    prefillWatch.Stop();
                    decodeWatch.Start();
                    // The prompt filled the cache through libtorch; single-sequence steps can go through the fused decoder.
                    if (batch == 1 && FusedCpuDecoding)
                    {
                        fused = CpuDecoder.TryCreate(Model, cache, out _);
                        needsTensors = processors.Count > 0 || config.DoSample;
                    }
                }
                if (finish.All(f => f is not null) || step == budget - 1)
                    break;

                if (fused is null || needsTensors)
                {
                    stepInput = tokens.narrow(1, length, 1);
                    stepInput.copy_(tensor(chosen, [batch, 1]).to(device));
                    mask.narrow(1, length, 1).fill_(1);
                    positions = positions.narrow(1, positions.shape[1] - 1, 1) + 1;
                }
                length++;
                // Keep only the tensors the next step reads; free this step's temporaries.
                scope.DisposeEverythingBut(stepInput, positions);
            }
        }
        finally
        {
            fused?.Dispose();
        }
        decodeWatch.Stop();
        for (var i = 0; i < batch; i++)
            finish[i] ??= FinishReason.Length;
        return new GenerationResult(sequences, prompts.Select(p => p.Count).ToList(), finish.Select(f => f!.Value).ToList(),
            prefillWatch.Elapsed, decodeWatch.Elapsed);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
            if (values[i] > values[best])
                best = i;
        return best;
    }

    /// <summary>Generates from one prompt and yields the decoded text as it grows (needs a tokenizer).</summary>
    public async IAsyncEnumerable<string> StreamAsync(IReadOnlyList<long> prompt, GenerationConfig config,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (decode is null)
            throw new InvalidOperationException("streaming text needs a tokenizer: construct the TextGenerator with a decode function");
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var run = Task.Run(() =>
        {
            try
            {
                Generate([prompt], config, step =>
                {
                    if (step.Text.Length > 0)
                        channel.Writer.TryWrite(step.Text);
                }, cancellationToken);
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, cancellationToken);
        await foreach (var text in channel.Reader.ReadAllAsync(cancellationToken))
            yield return text;
        await run;
    }

    /// <summary>Decoded text of one sequence's generated tokens, released as it becomes final: a trailing U+FFFD
    /// means a multi-byte character is still incomplete, so that text waits for the next token. Each step decodes only
    /// a short window (text-generation-inference's offsets): the tokens since the previous release, prefixed by the ones
    /// before it, whose decoded text is subtracted so a word's leading space survives decoders that strip it at the start.
    /// Decoding the whole generation every step made streaming cost O(n²).</summary>
    private sealed class TextStream(Func<IReadOnlyList<long>, string>? decode)
    {
        private int _prefixOffset, _readOffset;

        /// <summary>Text released so far.</summary>
        public string Text { get; private set; } = "";

        public string Push(List<long> sequence, int promptLength)
        {
            if (decode is null)
                return "";
            var generated = sequence.Count - promptLength;
            var prefix = decode(sequence.GetRange(promptLength + _prefixOffset, _readOffset - _prefixOffset));
            var text = decode(sequence.GetRange(promptLength + _prefixOffset, generated - _prefixOffset));
            if (text.Length <= prefix.Length || text.EndsWith('\uFFFD'))
                return "";
            var delta = text[prefix.Length..];
            _prefixOffset = _readOffset;
            _readOffset = generated;
            Text += delta;
            return delta;
        }
    }
}
