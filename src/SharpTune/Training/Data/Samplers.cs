namespace SharpTune.Training.Data;

/// <summary>The order examples are visited in each epoch. Orders depend only on (seed, epoch), so a resumed run
/// replays exactly the order of an uninterrupted one.</summary>
public static class Samplers
{
    /// <summary>Indices 0..n-1 in order.</summary>
    public static int[] Sequential(int count) => Enumerable.Range(0, count).ToArray();

    /// <summary>A uniformly random permutation (Fisher–Yates) seeded by seed and epoch.</summary>
    public static int[] Random(int count, long seed, int epoch)
    {
        var order = Sequential(count);
        var random = new Random(unchecked((int)(seed * 1_000_003 + epoch)));
        for (var i = count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>transformers' LengthGroupedSampler: a random permutation cut into megabatches of 50 batches, each
    /// sorted by length (longest first) so batches hold similar lengths and need little padding; the batch holding the
    /// longest example goes first so out-of-memory errors show at once.</summary>
    public static int[] LengthGrouped(IReadOnlyList<int> lengths, int batchSize, long seed, int epoch, int megabatchMultiplier = 50)
    {
        var permutation = Random(lengths.Count, seed, epoch);
        var megabatchSize = batchSize * megabatchMultiplier;
        var megabatches = permutation.Chunk(megabatchSize)
            .Select(chunk => chunk.OrderByDescending(i => lengths[i]).ToArray()).ToList();
        var (bestMega, bestLength) = (0, -1);
        for (var m = 0; m < megabatches.Count; m++)
            if (lengths[megabatches[m][0]] > bestLength)
                (bestMega, bestLength) = (m, lengths[megabatches[m][0]]);
        // Swap the longest example into the very first position.
        (megabatches[0][0], megabatches[bestMega][0]) = (megabatches[bestMega][0], megabatches[0][0]);
        return megabatches.SelectMany(m => m).ToArray();
    }
}
