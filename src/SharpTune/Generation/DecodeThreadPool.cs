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
/// idle generator costs no CPU).
/// <para>
/// A region is cut into <see cref="SlicesPerThread"/> contiguous slices per thread; the calling thread claims slices from
/// the front, workers from the back, each claim one compare-and-swap. So a worker that is slow to wake, or descheduled on
/// a busy machine, holds up nothing it has not started: the caller runs its slices too, and waits only for slices
/// already running elsewhere. A claim records the region's generation word (a sequence number with the slice count in
/// its low byte), so a worker that read an older region's word can never claim a slice of a newer one.
/// </para>
/// Not thread-safe: one decoder calls <see cref="For"/> from one thread at a time.
/// </summary>
internal sealed class DecodeThreadPool : IDisposable
{
    /// <summary>Work (multiply-adds or equivalent) below which the calling thread runs a region alone.</summary>
    public const long ParallelThreshold = 1 << 16;

    private const int SlicesPerThread = 2;
    private static readonly long SpinTime = Stopwatch.Frequency / 5000; // 200 µs

    private Thread[] _workers = [];
    private readonly object _gate = new();
    private readonly long[] _claims;
    private IRangeBody? _body;
    private int _count;
    private long _generation;
    private int _done, _sleepers;
    private Exception? _error;
    private volatile bool _disposed;

    /// <param name="threads">Threads per region, the calling thread included. The workers start with the first region
    /// that is big enough to share, so a model too small for any costs no thread.</param>
    public DecodeThreadPool(int threads)
    {
        Threads = Math.Clamp(threads, 1, 255 / SlicesPerThread);
        _claims = new long[Threads * SlicesPerThread];
    }

    public int Threads { get; }

    /// <summary>Runs <paramref name="body"/> over [0, count) in contiguous slices spread over the threads, or on the
    /// calling thread alone when <paramref name="work"/> is too small to pay for the hand-off. Returns when every slice
    /// has run; the first exception of any slice is rethrown.</summary>
    public void For(int count, long work, IRangeBody body)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var slices = work < ParallelThreshold || Threads == 1 ? 1 : Math.Min(_claims.Length, count);
        if (slices <= 1)
        {
            body.Run(0, count);
            return;
        }
        if (_workers.Length == 0)
            _workers = Enumerable.Range(1, Threads - 1).Select(StartWorker).ToArray();
        _body = body;
        _count = count;
        Volatile.Write(ref _done, 0);
        var word = ((_generation >> 8) + 1 << 8) | (long)slices;
        Interlocked.Exchange(ref _generation, word);
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_gate)
                Monitor.PulseAll(_gate);
        for (var slice = 0; slice < slices; slice++)
            TryRun(slice, word);
        var wait = new SpinWait();
        while (Volatile.Read(ref _done) < slices)
            wait.SpinOnce(sleep1Threshold: -1);
        _body = null;
        if (Interlocked.Exchange(ref _error, null) is { } error)
            ExceptionDispatchInfo.Throw(error);
    }

    /// <summary>Runs <paramref name="slice"/> of region <paramref name="word"/> unless another thread claimed it.</summary>
    private void TryRun(int slice, long word)
    {
        var claimed = Volatile.Read(ref _claims[slice]);
        if (claimed >= word || Interlocked.CompareExchange(ref _claims[slice], word, claimed) != claimed)
            return;
        // Claimed: the caller cannot leave this region (nor change _body/_count) before this slice counts as done.
        try
        {
            var slices = (int)(word & 0xFF);
            _body!.Run((int)((long)_count * slice / slices), (int)((long)_count * (slice + 1) / slices));
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, e, null);
        }
        finally
        {
            Interlocked.Increment(ref _done);
        }
    }

    private Thread StartWorker(int index)
    {
        var worker = new Thread(Work) { IsBackground = true, Name = $"SharpTune decode {index}" };
        worker.Start();
        return worker;
    }

    private void Work()
    {
        long seen = 0;
        while (true)
        {
            long word;
            var idleSince = Stopwatch.GetTimestamp();
            while ((word = Volatile.Read(ref _generation)) == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() - idleSince < SpinTime)
                {
                    Thread.SpinWait(8);
                    continue;
                }
                lock (_gate)
                {
                    // Announced before the last look at the word, so For either sees a sleeper or we see its region.
                    Interlocked.Increment(ref _sleepers);
                    while (Volatile.Read(ref _generation) == seen && !_disposed)
                        Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
                idleSince = Stopwatch.GetTimestamp();
            }
            if (_disposed)
                return;
            seen = word;
            for (var slice = (int)(word & 0xFF) - 1; slice >= 0; slice--)
                TryRun(slice, word);
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
