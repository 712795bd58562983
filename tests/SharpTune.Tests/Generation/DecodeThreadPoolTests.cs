using SharpTune.Generation;

namespace SharpTune.Tests.Generation;

/// <summary>The decode step's spinning thread pool: every index exactly once per region, regions strictly one after
/// another (with more threads than cores, so workers get descheduled mid-protocol), workers that fell asleep woken,
/// errors surfaced, threads gone after Dispose.</summary>
public class DecodeThreadPoolTests
{
    private sealed class CountingBody(int count) : IRangeBody
    {
        public readonly int[] Hits = new int[count];
        public int Slices;

        public void Run(int start, int end)
        {
            Interlocked.Increment(ref Slices);
            for (var i = start; i < end; i++)
                Interlocked.Increment(ref Hits[i]);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void EveryIndexRunsOncePerRegion(int threads)
    {
        using var pool = new DecodeThreadPool(threads);
        var random = new Random(threads);
        for (var region = 0; region < 2000; region++)
        {
            var count = random.Next(1, 40);
            var body = new CountingBody(count);
            pool.For(count, DecodeThreadPool.ParallelThreshold, body);
            Assert.All(body.Hits, hits => Assert.Equal(1, hits));
            Assert.Equal(Math.Min(2 * threads, count), body.Slices);
            if (region % 500 == 0)
                Thread.Sleep(5); // long enough for the workers to stop spinning and block
        }
    }

    [Fact]
    public void SmallWorkStaysOnTheCallingThreadAndBigWorkIsShared()
    {
        using var pool = new DecodeThreadPool(2);
        var caller = Environment.CurrentManagedThreadId;
        var threadsSeen = new HashSet<int>();
        var body = new DelegateBody((_, _) =>
        {
            lock (threadsSeen)
                threadsSeen.Add(Environment.CurrentManagedThreadId);
            Thread.SpinWait(2000);
        });
        for (var region = 0; region < 50; region++)
            pool.For(100, DecodeThreadPool.ParallelThreshold - 1, body);
        Assert.Equal([caller], threadsSeen);
        // The caller may run every slice of a region before a worker claims one, but not of all 200.
        for (var region = 0; region < 200 && threadsSeen.Count == 1; region++)
            pool.For(100, DecodeThreadPool.ParallelThreshold, body);
        Assert.Equal(2, threadsSeen.Count);
    }

    [Fact]
    public void AnErrorInAnySliceReachesTheCallerAfterTheRegion()
    {
        using var pool = new DecodeThreadPool(2);
        var counting = new CountingBody(10);
        var body = new DelegateBody((start, end) =>
        {
            counting.Run(start, end);
            if (start == 5)
                throw new InvalidOperationException($"slice at {start}");
        });
        // Four slices of 10: [0,2) [2,5) [5,7) [7,10); the others still run.
        for (var region = 0; region < 20; region++)
        {
            Array.Clear(counting.Hits);
            var error = Assert.Throws<InvalidOperationException>(() => pool.For(10, DecodeThreadPool.ParallelThreshold, body));
            Assert.Equal("slice at 5", error.Message);
            Assert.All(counting.Hits, hits => Assert.Equal(1, hits));
        }
        var after = new CountingBody(10);
        pool.For(10, DecodeThreadPool.ParallelThreshold, after);
        Assert.All(after.Hits, hits => Assert.Equal(1, hits));
    }

    [Fact]
    public void DisposeStopsTheWorkers()
    {
        var pool = new DecodeThreadPool(3);
        pool.For(8, DecodeThreadPool.ParallelThreshold, new CountingBody(8));
        var disposer = new Thread(pool.Dispose);
        disposer.Start();
        Assert.True(disposer.Join(TimeSpan.FromSeconds(10)), "Dispose did not return");
        Assert.Throws<ObjectDisposedException>(() => pool.For(8, DecodeThreadPool.ParallelThreshold, new CountingBody(8)));
    }

    private sealed class DelegateBody(Action<int, int> run) : IRangeBody
    {
        public void Run(int start, int end) => run(start, end);
    }
}
