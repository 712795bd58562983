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
        for (var step = 0; step < budget; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var activeMask = mask.narrow(1, 0, length);
            Tensor scores;
            using (var output = Model.Forward(new ModelInputs(stepInput) { AttentionMask = activeMask, PositionIds = positions, Cache = cache }))
            {
                var logits = output.Logits ?? throw new InvalidOperationException("the model returned no logits");
                scores = logits.select(1, -1).to(ScalarType.Float32);
            }
            scores = LogitsProcessors.Apply(processors, tokens.narrow(1, 0, length), activeMask, scores);
            var next = config.DoSample
                ? multinomial(scores.softmax(-1), 1, generator: generator).squeeze(-1)
                : scores.argmax(-1);
            var chosen = next.cpu().data<long>().ToArray();

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
            }
            if (finish.All(f => f is not null) || step == budget - 1)
                break;

            stepInput = tokens.narrow(1, length, 1);
            stepInput.copy_(tensor(chosen, [batch, 1]).to(device));
            mask.narrow(1, length, 1).fill_(1);
            positions = positions.narrow(1, positions.shape[1] - 1, 1) + 1;
            length++;
            // Keep only the tensors the next step reads; free this step's temporaries.
            scope.DisposeEverythingBut(stepInput, positions);
        }
        decodeWatch.Stop();
        for (var i = 0; i < batch; i++)
            finish[i] ??= FinishReason.Length;
        return new GenerationResult(sequences, prompts.Select(p => p.Count).ToList(), finish.Select(f => f!.Value).ToList(),
            prefillWatch.Elapsed, decodeWatch.Elapsed);
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
    /// means a multi-byte character is still incomplete, so that text waits for the next token.</summary>
    private sealed class TextStream(Func<IReadOnlyList<long>, string>? decode)
    {
        private int _released;

        public string Text { get; private set; } = "";

        public string Push(List<long> sequence, int promptLength)
        {
            if (decode is null)
                return "";
            Text = decode(sequence.GetRange(promptLength, sequence.Count - promptLength));
            if (Text.EndsWith('\uFFFD') || Text.Length <= _released)
                return "";
            var delta = Text[_released..];
            _released = Text.Length;
            return delta;
        }
    }
}
