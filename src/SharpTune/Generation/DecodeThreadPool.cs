using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace SharpTune.Generation;

/// <summary>Work over the index range [start, end) of a <see cref="DecodeThreadPool.For"/> call.</summary>
internal interface IRangeBody
{
    void Run(int start, int end);
}

/// <summary>
/// The threads one batch-1 decode step splits its products over. A step is ~5 parallel regions per layer of 5-500 µs
/// each, so a hand-off has to cost well under a microsecond, which neither <see cref="Parallel.For(int, int, Action{int})"/>
/// (thread-pool queues, a few µs and an allocation per call) nor waking a sleeping thread does. Workers therefore spin on
/// a generation counter while regions follow one another, and block only after <see cref="SpinTime"/> without work (so an
/// idle generator costs no CPU); the calling thread runs the first slice itself. While it waits for a descheduled
/// worker it spins with yields, which on a busy machine gives the worker its core back.
/// Not thread-safe: one decoder calls <see cref="For"/> from one thread at a time.
/// </summary>
internal sealed class DecodeThreadPool : IDisposable
{
    /// <summary>Work (multiply-adds or equivalent) below which the calling thread runs a region alone.</summary>
    public const long ParallelThreshold = 1 << 16;

    private static readonly long SpinTime = Stopwatch.Frequency / 5000; // 200 µs

    private Thread[] _workers = [];
    private readonly object _gate = new();
    private IRangeBody? _body;
    private int _count, _slices;
    private long _generation;
    private int _pending, _sleepers;
    private Exception? _error;
    private volatile bool _disposed;

    /// <param name="threads">Threads per region, the calling thread included. The workers start with the first region
    /// that is big enough to share, so a model too small for any costs no thread.</param>
    public DecodeThreadPool(int threads) => Threads = Math.Max(1, threads);

    public int Threads { get; }

    /// <summary>Runs <paramref name="body"/> over [0, count) in contiguous slices, one per thread, or on the calling
    /// thread alone when <paramref name="work"/> is too small to pay for the hand-off.</summary>
    public void For(int count, long work, IRangeBody body)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var slices = work < ParallelThreshold ? 1 : Math.Min(Threads, count);
        if (slices <= 1)
        {
            body.Run(0, count);
            return;
        }
        if (_workers.Length == 0)
            _workers = Enumerable.Range(1, Threads - 1).Select(StartWorker).ToArray();
        _body = body;
        _count = count;
        _slices = slices;
        // Every worker acknowledges every region (those without a slice too), so none can mistake the next region's
        // parameters for this one's.
        Volatile.Write(ref _pending, _workers.Length);
        Interlocked.Increment(ref _generation);
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_gate)
                Monitor.PulseAll(_gate);
        Exception? own = null;
        try
        {
            RunSlice(0);
        }
        catch (Exception e)
        {
            own = e;
        }
        var wait = new SpinWait();
        while (Volatile.Read(ref _pending) > 0)
            wait.SpinOnce(sleep1Threshold: -1);
        _body = null;
        var error = own ?? Interlocked.Exchange(ref _error, null);
        if (error is not null)
            ExceptionDispatchInfo.Throw(error);
    }

    private void RunSlice(int slice)
    {
        if (slice >= _slices)
            return;
        var start = (int)((long)_count * slice / _slices);
        var end = (int)((long)_count * (slice + 1) / _slices);
        _body!.Run(start, end);
    }

    private Thread StartWorker(int slice)
    {
        var worker = new Thread(() => Work(slice)) { IsBackground = true, Name = $"SharpTune decode {slice}" };
        worker.Start();
        return worker;
    }

    private void Work(int slice)
    {
        long seen = 0;
        while (true)
        {
            long generation;
            var idleSince = Stopwatch.GetTimestamp();
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() - idleSince < SpinTime)
                {
                    Thread.SpinWait(8);
                    continue;
                }
                lock (_gate)
                {
                    // Announced before the last look at the counter, so For either sees a sleeper or we see its region.
                    Interlocked.Increment(ref _sleepers);
                    while (Volatile.Read(ref _generation) == seen && !_disposed)
                        Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
                idleSince = Stopwatch.GetTimestamp();
            }
            if (_disposed)
                return;
            seen = generation;
            try
            {
                RunSlice(slice);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        lock (_gate)
            Monitor.PulseAll(_gate);
        foreach (var worker in _workers)
            worker.Join();
    }
}
