using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>DeBERTa's log position buckets (the parity fixture is too short to reach them).</summary>
public class DebertaV2RelativePositionTests
{
    [Fact]
    public void NearDistancesStayExactFarOnesAreLogBucketed()
    {
        // queries 0..100 against key 0: distance = query index. buckets 32 → mid 16, max position 64:
        // d > 16 maps to ceil(ln(d/16) / ln(63/16) · 15) + 16, e.g. 20 → 19, 100 → 37.
        using var forward = DebertaV2.RelativePositions(101, 1, buckets: 32, maxPosition: 64, CPU);
        Assert.Equal([1L, 1L, 101L, 1L], forward.shape);
        var values = forward.flatten().data<long>().ToArray();
        Assert.Equal(0, values[0]);
        Assert.Equal(15, values[15]);
        Assert.Equal(16, values[16]);
        Assert.Equal(19, values[20]);
        Assert.Equal(37, values[100]);

        using var backward = DebertaV2.RelativePositions(1, 41, buckets: 32, maxPosition: 64, CPU);
        Assert.Equal(-27, backward.flatten().data<long>()[40]); // distance −40 → −(ceil(ln 2.5 / ln 3.9375 · 15) + 16)
    }

    [Fact]
    public void WithoutBucketsDistancesAreQueryMinusKey()
    {
        using var positions = DebertaV2.RelativePositions(3, 3, buckets: -1, maxPosition: 64, CPU);
        Assert.Equal(new long[] { 0, -1, -2, 1, 0, -1, 2, 1, 0 }, positions.flatten().data<long>().ToArray());
    }
}
