using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.AI;

/// <summary>Limits of a <see cref="BatchedTextGenerator"/>.</summary>
public sealed record BatchingOptions
{
    /// <summary>Sequences decoded together in one forward pass; 1 serves requests one at a time.</summary>
    public int MaxBatchSize { get; init; } = 16;

    /// <summary>Requests waiting for a batch slot; a request beyond them is refused with <see cref="QueueFullException"/>.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    public void Validate()
    {
        if (MaxBatchSize < 1)
            throw new ArgumentException($"max batch size must be at least 1 (got {MaxBatchSize})");
        if (MaxQueuedRequests < 1)
            throw new ArgumentException($"max queued requests must be at least 1 (got {MaxQueuedRequests})");
    }
}

/// <summary>The generator's queue is full: the request was not accepted (HTTP 429).</summary>
public sealed class QueueFullException(string message) : Exception(message);

/// <summary>How one request ended: its text (stop strings cut off), why it stopped, its token counts and the generated ids.</summary>
public sealed record GenerationOutcome(string Text, FinishReason FinishReason, int PromptTokens, int CompletionTokens, IReadOnlyList<long> TokenIds);

/// <summary>One submitted request: its text as it is produced, then its <see cref="Completion"/>.</summary>
public sealed class GenerationStream
{
    private readonly Channel<string> _deltas = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<GenerationOutcome> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal GenerationStream(int promptTokens) => PromptTokens = promptTokens;

    public int PromptTokens { get; }

    /// <summary>Completes with the outcome, faults with the generation's error, or is cancelled with the request.</summary>
    public Task<GenerationOutcome> Completion => _done.Task;

    /// <summary>The generated text in pieces as they become final (text that may begin a stop string is held back).</summary>
    public IAsyncEnumerable<string> ReadTextAsync(CancellationToken cancellationToken = default) => _deltas.Reader.ReadAllAsync(cancellationToken);

    internal void Write(string delta)
    {
        if (delta.Length > 0)
            _deltas.Writer.TryWrite(delta);
    }

    internal void Finish(GenerationOutcome outcome)
    {
        _deltas.Writer.TryComplete();
        _done.TrySetResult(outcome);
    }

    internal void Fail(Exception error)
    {
        _deltas.Writer.TryComplete(error);
        _done.TrySetException(error);
    }

    internal void Cancel(CancellationToken token)
    {
        _deltas.Writer.TryComplete(new OperationCanceledException(token));
        _done.TrySetCanceled(token);
    }
}

/// <summary>
/// Continuous batching for a causal LM, thread-safe: requests are queued (bounded), each is prefilled alone as soon
/// as a batch slot frees up, then decoded together with the running sequences, one token per sequence per forward
/// pass. All rows of the shared <see cref="KeyValueCache"/> end at the same column (each row left-padded to the
/// longest), so a sequence joins or leaves by re-packing the cache; per sequence it keeps its own sampling settings,
/// seed, stop strings, token budget and cancellation. One worker thread owns the model; a failing forward pass fails
/// the sequences in it and the generator goes on.
/// </summary>
public sealed class BatchedTextGenerator : IDisposable
{
    private readonly ICausalLM _model;
    private readonly Func<IReadOnlyList<long>, string> _decode;
    private readonly BatchingOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<Sequence> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _worker;
    private readonly Device _device;
    // Owned by the worker thread.
    private List<Sequence> _active = [];
    private KeyValueCache? _cache;
    private int _queued;

    /// <param name="decode">Token ids → text (special tokens skipped), for streaming and stop strings.</param>
    public BatchedTextGenerator(ICausalLM model, Func<IReadOnlyList<long>, string> decode, BatchingOptions? options = null, ILogger? logger = null)
    {
        _model = model;
        _decode = decode;
        _options = options ?? new BatchingOptions();
        _options.Validate();
        _logger = logger ?? NullLogger.Instance;
        _device = model is nn.Module module ? module.parameters().First().device : CPU;
        // Read once here: request threads must not call into libtorch while the worker runs the model.
        VocabSize = model.VocabSize;
        MaxPositions = model.MaxPositions;
        _queue = Channel.CreateBounded<Sequence>(new BoundedChannelOptions(_options.MaxQueuedRequests)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _worker = new Thread(Run) { IsBackground = true, Name = "SharpTune batched generation" };
        _worker.Start();
    }

    public ICausalLM Model => _model;

    /// <summary>The longest prompt + completion the model supports.</summary>
    public int MaxPositions { get; }

    /// <summary>Size of the model's vocabulary: prompt ids must be below it.</summary>
    public int VocabSize { get; }

    /// <summary>Requests waiting for a batch slot.</summary>
    public int QueuedRequests => Volatile.Read(ref _queued);

    /// <summary>Sequences being decoded.</summary>
    public int ActiveSequences => Volatile.Read(ref _activeCount);
    private int _activeCount;

    /// <summary>Sequences removed because their request was cancelled (e.g. the client disconnected), since start.</summary>
    public long CancelledSequences => Interlocked.Read(ref _cancelled);
    private long _cancelled;

    /// <summary>Tokens generated for all requests since start.</summary>
    public long GeneratedTokens => Interlocked.Read(ref _generated);
    private long _generated;

    /// <summary>
    /// Queues a continuation of <paramref name="prompt"/>: <see cref="GenerationConfig.MaxNewTokens"/> (required) tokens
    /// at most, greedy or sampled per <paramref name="config"/>. Cancelling <paramref name="cancellationToken"/> (a
    /// client disconnecting) removes the sequence from its batch.
    /// </summary>
    /// <exception cref="ArgumentException">The prompt is empty, the config is invalid or prompt + tokens exceed the model's positions.</exception>
    /// <exception cref="QueueFullException">The queue holds <see cref="BatchingOptions.MaxQueuedRequests"/> requests already.</exception>
    public GenerationStream Submit(IReadOnlyList<long> prompt, GenerationConfig config, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        config.Validate();
        if (prompt.Count == 0)
            throw new ArgumentException("the prompt is empty: give at least one token");
        var budget = config.MaxNewTokens ?? throw new ArgumentException("set MaxNewTokens: the generator needs each request's token budget");
        if (budget < 1)
            throw new ArgumentException($"max new tokens must be at least 1 (got {budget})");
        if (prompt.Count + budget > MaxPositions)
            throw new ArgumentException(
                $"the prompt ({prompt.Count} tokens) + {budget} new tokens exceed the model's context of {MaxPositions} tokens");
        if (prompt.Any(id => id < 0 || id >= VocabSize))
            throw new ArgumentException($"a prompt token id is outside the vocabulary (0..{VocabSize - 1})");
        var sequence = new Sequence(prompt, config, budget, cancellationToken);
        if (!_queue.Writer.TryWrite(sequence))
            throw new QueueFullException($"the server is busy: {_options.MaxQueuedRequests} requests are already waiting; retry later");
        Interlocked.Increment(ref _queued);
        sequence.CancelRegistration = cancellationToken.Register(() => sequence.Stream.Cancel(cancellationToken));
        return sequence.Stream;
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        _queue.Writer.TryComplete();
        _worker.Join();
        _stop.Dispose();
    }

    private void Run()
    {
        // Gradient mode is per thread: the worker never needs gradients.
        using var noGrad = no_grad();
        while (true)
        {
            try
            {
                if (_active.Count == 0 && !_queue.Reader.WaitToReadAsync(_stop.Token).AsTask().GetAwaiter().GetResult())
                    break;
                Admit();
                if (_active.Count > 0)
                    Step();
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception error)
            {
                // A failed forward pass (out of memory, a model error) ends the sequences in it, not the generator.
                _logger.LogError(error, "batched generation failed for {Count} sequences", _active.Count);
                foreach (var sequence in _active)
                    sequence.Fail(error);
                ResetBatch();
            }
        }
        var shutdown = new ObjectDisposedException(nameof(BatchedTextGenerator), "the generator was disposed");
        foreach (var sequence in _active)
            sequence.Fail(shutdown);
        ResetBatch();
        while (_queue.Reader.TryRead(out var waiting))
            waiting.Fail(shutdown);
    }

    /// <summary>Prefills queued requests into the free batch slots and re-packs the cache with them.</summary>
    private void Admit()
    {
        var joining = new List<Sequence>();
        while (_active.Count + joining.Count < _options.MaxBatchSize && _queue.Reader.TryRead(out var sequence))
        {
            Interlocked.Decrement(ref _queued);
            if (sequence.IsCancelled)
            {
                Interlocked.Increment(ref _cancelled);
                sequence.Dispose();
                continue;
            }
            try
            {
                Prefill(sequence);
            }
            catch (Exception error)
            {
                _logger.LogError(error, "prefill of a {Length}-token prompt failed", sequence.Tokens.Count);
                sequence.Fail(error);
                continue;
            }
            if (sequence.IsFinished)
                sequence.Dispose();
            else
                joining.Add(sequence);
        }
        if (joining.Count > 0)
            Repack(joining);
    }

    private void Prefill(Sequence sequence)
    {
        using var scope = NewDisposeScope();
        var length = sequence.Tokens.Count;
        sequence.PrefillCache = _model.CreateCache(length);
        var input = tensor(sequence.Tokens.ToArray(), [1, length]).to(_device);
        var mask = ones(1, length, ScalarType.Int64, _device);
        var positions = arange(length, ScalarType.Int64, _device).unsqueeze(0);
        using var output = _model.Forward(new ModelInputs(input) { AttentionMask = mask, PositionIds = positions, Cache = sequence.PrefillCache });
        var scores = (output.Logits ?? throw new InvalidOperationException("the model returned no logits")).select(1, -1).to(ScalarType.Float32);
        sequence.CachedLength = length;
        Accept(sequence, Choose(sequence, scores, 0, scores.argmax(-1).item<long>()));
    }

    /// <summary>One decoding step: every active sequence feeds its last token and gets its next one.</summary>
    private void Step()
    {
        var removed = _active.RemoveAll(s =>
        {
            if (!s.IsCancelled)
                return false;
            Interlocked.Increment(ref _cancelled);
            s.Dispose();
            return true;
        });
        if (removed > 0)
            Repack([]);
        if (_active.Count == 0)
            return;

        using var scope = NewDisposeScope();
        var cache = _cache!;
        var batch = _active.Count;
        var length = cache.Length;
        var input = tensor(_active.Select(s => s.Tokens[^1]).ToArray(), [batch, 1]).to(_device);
        var positions = tensor(_active.Select(s => (long)s.CachedLength).ToArray(), [batch, 1]).to(_device);
        // Row i's real tokens are its last CachedLength cached columns, plus the token fed now.
        var firstReal = tensor(_active.Select(s => length - s.CachedLength).ToArray(), [batch, 1]).to(_device);
        var mask = arange(length + 1, ScalarType.Int64, _device).unsqueeze(0).ge(firstReal).to(ScalarType.Int64);
        using var output = _model.Forward(new ModelInputs(input) { AttentionMask = mask, PositionIds = positions, Cache = cache });
        var scores = (output.Logits ?? throw new InvalidOperationException("the model returned no logits")).select(1, -1).to(ScalarType.Float32);
        var greedy = scores.argmax(-1).cpu().data<long>().ToArray();
        for (var row = 0; row < batch; row++)
        {
            var sequence = _active[row];
            sequence.CachedLength++;
            Accept(sequence, Choose(sequence, scores, row, greedy[row]));
        }
        if (_active.Any(s => s.IsFinished))
        {
            _active.RemoveAll(s =>
            {
                if (!s.IsFinished)
                    return false;
                s.Dispose();
                return true;
            });
            Repack([]);
        }
    }

    /// <summary>The next token of the sequence in <paramref name="row"/> of <paramref name="scores"/> [B, V]; <paramref name="greedy"/> is
    /// the row's argmax, its choice when it neither samples nor processes logits.</summary>
    private static long Choose(Sequence sequence, Tensor scores, int row, long greedy)
    {
        if (sequence.Processors.Count == 0 && !sequence.Config.DoSample)
            return greedy;
        using var scope = NewDisposeScope();
        var rowScores = scores.narrow(0, row, 1);
        if (sequence.Processors.Count > 0)
        {
            var tokens = tensor(sequence.Tokens.ToArray(), [1, sequence.Tokens.Count]).to(scores.device);
            rowScores = LogitsProcessors.Apply(sequence.Processors, tokens, ones_like(tokens), rowScores);
        }
        return sequence.Config.DoSample
            ? multinomial(rowScores.softmax(-1), 1, generator: sequence.Generator(scores.device)).item<long>()
            : rowScores.argmax(-1).item<long>();
    }

    private void Accept(Sequence sequence, long token)
    {
        sequence.Tokens.Add(token);
        Interlocked.Increment(ref _generated);
        var generated = sequence.Tokens.Count - sequence.PromptLength;
        if (sequence.Eos.Contains(token))
        {
            sequence.Complete(FinishReason.EndOfSequence, null);
            return;
        }
        var text = _decode(sequence.Tokens.GetRange(sequence.PromptLength, generated));
        var stopAt = -1;
        foreach (var stop in sequence.Config.StopStrings)
            if (stop.Length > 0 && text.IndexOf(stop, StringComparison.Ordinal) is var at and >= 0 && (stopAt < 0 || at < stopAt))
                stopAt = at;
        if (stopAt >= 0)
            sequence.Complete(FinishReason.StopString, text[..stopAt]);
        // The next token would sit at position CachedLength + 1: beyond the model's positions, the sequence must end.
        else if (generated >= sequence.Budget || sequence.CachedLength + 1 >= MaxPositions)
            sequence.Complete(FinishReason.Length, text);
        else
            sequence.Release(text);
    }

    /// <summary>Rebuilds the shared cache for the active sequences plus <paramref name="joining"/> (each with its own
    /// prefill cache): rows left-padded to the longest, capacity for every row's remaining budget.</summary>
    private void Repack(List<Sequence> joining)
    {
        var rows = _active.Concat(joining).ToList();
        if (rows.Count == 0)
        {
            ResetBatch();
            return;
        }
        var length = rows.Max(s => s.CachedLength);
        var capacity = length + rows.Max(s => s.Budget - (s.Tokens.Count - s.PromptLength)) + 1;
        var packed = _model.CreateCache(capacity);
        try
        {
            using var scope = NewDisposeScope();
            // The sequences staying are gathered with one index_select per layer: all rows end at the cache's last
            // column, so their tokens lie within its last keptLength columns.
            var kept = _active;
            var keptLength = kept.Count > 0 ? kept.Max(s => s.CachedLength) : 0;
            var keptRows = kept.Count > 0 ? tensor(kept.Select(s => (long)s.CacheRow).ToArray()).to(_device) : null;
            for (var layer = 0; layer < _model.NumLayers; layer++)
            {
                Tensor? keys = null, values = null;
                if (kept.Count > 0)
                {
                    var (cachedKeys, cachedValues) = _cache!.Cached(layer) ?? throw new InvalidOperationException($"layer {layer} has nothing cached");
                    var start = _cache.Length - keptLength;
                    keys = cachedKeys.narrow(2, start, keptLength).index_select(0, keptRows!);
                    values = cachedValues.narrow(2, start, keptLength).index_select(0, keptRows!);
                    if (joining.Count > 0)
                    {
                        keys = Place(keys, rows.Count, length, 0);
                        values = Place(values, rows.Count, length, 0);
                    }
                }
                for (var j = 0; j < joining.Count; j++)
                {
                    var (prefillKeys, prefillValues) = joining[j].PrefillCache!.Cached(layer) ?? throw new InvalidOperationException($"layer {layer} has nothing cached");
                    keys = Place(prefillKeys, rows.Count, length, kept.Count + j, keys);
                    values = Place(prefillValues, rows.Count, length, kept.Count + j, values);
                }
                packed.Append(layer, keys!, values!);
            }
            packed.Advance(length);
        }
        catch (Exception error)
        {
            packed.Dispose();
            foreach (var sequence in joining)
                sequence.Fail(error);
            throw;
        }
        _cache?.Dispose();
        foreach (var sequence in joining)
        {
            sequence.PrefillCache?.Dispose();
            sequence.PrefillCache = null;
        }
        _cache = packed;
        _active = rows;
        for (var row = 0; row < rows.Count; row++)
            rows[row].CacheRow = row;
        Volatile.Write(ref _activeCount, rows.Count);
    }

    /// <summary>Copies <paramref name="source"/> [b, H, t, D] into rows <paramref name="row"/>.. of <paramref name="target"/>
    /// [batch, H, length, D] (allocated with zeros when null), right-aligned: its t columns become the last ones.</summary>
    private static Tensor Place(Tensor source, int batch, long length, int row, Tensor? target = null)
    {
        target ??= zeros([batch, source.shape[1], length, source.shape[3]], source.dtype, source.device);
        var steps = source.shape[2];
        target.narrow(0, row, source.shape[0]).narrow(2, length - steps, steps).copy_(source);
        return target;
    }

    private void ResetBatch()
    {
        foreach (var sequence in _active)
            sequence.Dispose();
        _active = [];
        _cache?.Dispose();
        _cache = null;
        Volatile.Write(ref _activeCount, 0);
    }

    /// <summary>One request's state, owned by the worker thread once dequeued.</summary>
    private sealed class Sequence(IReadOnlyList<long> prompt, GenerationConfig config, int budget, CancellationToken cancellationToken) : IDisposable
    {
        private Generator? _generator;
        private int _released;
        private string _text = "";

        public List<long> Tokens { get; } = [.. prompt];
        public int PromptLength { get; } = prompt.Count;
        public GenerationConfig Config { get; } = config;
        public int Budget { get; } = budget;
        public HashSet<long> Eos { get; } = [.. config.EosTokenIds];
        public IReadOnlyList<ILogitsProcessor> Processors { get; } = LogitsProcessors.For(config);
        public GenerationStream Stream { get; } = new(prompt.Count);
        public CancellationTokenRegistration CancelRegistration { get; set; }
        public KeyValueCache? PrefillCache { get; set; }
        /// <summary>Real (unpadded) positions in the cache: every token but the last one chosen.</summary>
        public int CachedLength { get; set; }
        /// <summary>The sequence's row in the shared cache (once it has joined the batch).</summary>
        public int CacheRow { get; set; }
        public bool IsFinished { get; private set; }
        public bool IsCancelled => cancellationToken.IsCancellationRequested;

        public Generator? Generator(Device device) =>
            Config.Seed is { } seed ? _generator ??= new Generator((ulong)seed, device) : null;

        /// <summary>Passes on the text that is final: not an incomplete character, not a possible stop-string start.</summary>
        public void Release(string text)
        {
            _text = text;
            if (text.EndsWith('\uFFFD'))
                return;
            var end = text.Length - HeldBack(text);
            if (end > _released)
            {
                Stream.Write(text[_released..end]);
                _released = end;
            }
        }

        public void Complete(FinishReason reason, string? text)
        {
            text ??= _text;
            if (text.Length > _released)
                Stream.Write(text[_released..]);
            IsFinished = true;
            Stream.Finish(new GenerationOutcome(text, reason, PromptLength, Tokens.Count - PromptLength, Tokens.GetRange(PromptLength, Tokens.Count - PromptLength)));
        }

        public void Fail(Exception error)
        {
            IsFinished = true;
            Stream.Fail(error);
            Dispose();
        }

        public void Dispose()
        {
            CancelRegistration.Dispose();
            PrefillCache?.Dispose();
            PrefillCache = null;
            _generator?.Dispose();
            _generator = null;
        }

        /// <summary>Length of the longest end of <paramref name="text"/> that begins some stop string.</summary>
        private int HeldBack(string text)
        {
            var held = 0;
            foreach (var stop in Config.StopStrings)
                for (var length = Math.Min(stop.Length - 1, text.Length); length > held; length--)
                    if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                    {
                        held = length;
                        break;
                    }
            return held;
        }
    }
}
