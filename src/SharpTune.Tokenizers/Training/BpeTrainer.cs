namespace SharpTune.Tokenizers.Training;

/// <summary>Settings of BPE (and WordPiece) training, as in Hugging Face's BpeTrainer.</summary>
public sealed record BpeTrainerOptions
{
    public int VocabSize { get; init; } = 30000;

    /// <summary>Merges of pairs seen fewer times than this are not learned.</summary>
    public long MinFrequency { get; init; }

    /// <summary>Tokens placed first in the vocabulary, in this order.</summary>
    public IReadOnlyList<string> SpecialTokens { get; init; } = [];

    /// <summary>Keep only the most frequent characters (others become unknown).</summary>
    public int? LimitAlphabet { get; init; }

    /// <summary>Characters always in the alphabet, even when absent from the corpus (e.g. the 256 byte-level chars).</summary>
    public IReadOnlyList<char> InitialAlphabet { get; init; } = [];

    public string? ContinuingSubwordPrefix { get; init; }
    public string? EndOfWordSuffix { get; init; }
}

/// <summary>The result of BPE training: the vocabulary (index = id) and the merges in rank order.</summary>
public sealed record BpeTrainingResult(IReadOnlyList<string> Vocab, IReadOnlyList<(string Left, string Right)> Merges);

/// <summary>
/// Learns BPE merges from word counts exactly the way Hugging Face's BpeTrainer does: alphabet by code point,
/// then repeatedly the most frequent pair (ties: the smallest pair of ids), with lazily refreshed counts.
/// </summary>
public static class BpeTrainer
{
    public static BpeTrainingResult Train(IReadOnlyDictionary<string, long> wordCounts, BpeTrainerOptions options,
        IProgress<double>? progress = null)
    {
        var idToWord = new List<string>();
        var wordToId = new Dictionary<string, int>(StringComparer.Ordinal);
        void Add(string token)
        {
            if (wordToId.TryAdd(token, idToWord.Count))
                idToWord.Add(token);
        }
        foreach (var special in options.SpecialTokens)
            Add(special);
        foreach (var c in Alphabet(wordCounts, options))
            Add(c);

        // Words as symbol id lists (chars outside the alphabet are dropped, as Hugging Face does).
        var words = new List<List<int>>(wordCounts.Count);
        var counts = new List<long>(wordCounts.Count);
        foreach (var (word, count) in wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal))
        {
            var symbols = new List<int>(word.Length);
            var runes = word.EnumerateRunes().ToList();
            for (var i = 0; i < runes.Count; i++)
            {
                var s = runes[i].ToString();
                if (!wordToId.ContainsKey(s))
                    continue;
                if (i > 0 && options.ContinuingSubwordPrefix is { } prefix)
                    s = prefix + s;
                if (i == runes.Count - 1 && options.EndOfWordSuffix is { } suffix)
                    s += suffix;
                Add(s);
                symbols.Add(wordToId[s]);
            }
            words.Add(symbols);
            counts.Add(count);
        }

        var pairCounts = new Dictionary<(int, int), long>();
        var whereToUpdate = new Dictionary<(int, int), HashSet<int>>();
        for (var w = 0; w < words.Count; w++)
        {
            var symbols = words[w];
            for (var i = 0; i + 1 < symbols.Count; i++)
            {
                var pair = (symbols[i], symbols[i + 1]);
                pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + counts[w];
                if (!whereToUpdate.TryGetValue(pair, out var set))
                    whereToUpdate[pair] = set = [];
                set.Add(w);
            }
        }
        // Max-heap on count, then the smaller pair first: encoded as a min-heap on (-count, a, b).
        var queue = new PriorityQueue<((int, int) Pair, HashSet<int> Words), (long, int, int)>();
        void Flush()
        {
            foreach (var (pair, set) in whereToUpdate)
                if (pairCounts[pair] > 0)
                    queue.Enqueue((pair, set), (-pairCounts[pair], pair.Item1, pair.Item2));
            whereToUpdate.Clear();
        }
        Flush();

        var merges = new List<(string, string)>();
        var prefixLength = options.ContinuingSubwordPrefix?.Length ?? 0;
        var initialSize = idToWord.Count;
        while (idToWord.Count < options.VocabSize && queue.TryDequeue(out var top, out var priority))
        {
            var current = pairCounts[top.Pair];
            if (-priority.Item1 != current)
            {
                queue.Enqueue(top, (-current, top.Pair.Item1, top.Pair.Item2));
                continue;
            }
            if (current < 1 || options.MinFrequency > current)
                break;
            var left = idToWord[top.Pair.Item1];
            var right = idToWord[top.Pair.Item2];
            if (prefixLength > 0 && right.StartsWith(options.ContinuingSubwordPrefix!, StringComparison.Ordinal))
                right = right[prefixLength..];
            var newToken = left + right;
            Add(newToken);
            var newId = wordToId[newToken];
            merges.Add((idToWord[top.Pair.Item1], idToWord[top.Pair.Item2]));
            foreach (var w in top.Words)
                Merge(words[w], top.Pair, newId, counts[w], w, pairCounts, whereToUpdate);
            Flush();
            progress?.Report((double)(idToWord.Count - initialSize) / Math.Max(1, options.VocabSize - initialSize));
        }
        return new BpeTrainingResult(idToWord, merges);
    }

    /// <summary>Merges every occurrence of <paramref name="pair"/> in a word, recording the pair count changes.</summary>
    private static void Merge(List<int> symbols, (int A, int B) pair, int newId, long count, int word,
        Dictionary<(int, int), long> pairCounts, Dictionary<(int, int), HashSet<int>> whereToUpdate)
    {
        void Change((int, int) p, int delta)
        {
            pairCounts[p] = pairCounts.GetValueOrDefault(p) + delta * count;
            if (delta > 0)
            {
                if (!whereToUpdate.TryGetValue(p, out var set))
                    whereToUpdate[p] = set = [];
                set.Add(word);
            }
        }
        for (var i = 0; i < symbols.Count; i++)
        {
            if (symbols[i] != pair.A || i + 1 >= symbols.Count || symbols[i + 1] != pair.B)
                continue;
            if (i > 0)
            {
                Change((symbols[i - 1], pair.A), -1);
                Change((symbols[i - 1], newId), 1);
            }
            symbols[i] = newId;
            symbols.RemoveAt(i + 1);
            if (i < symbols.Count - 1)
            {
                Change((pair.B, symbols[i + 1]), -1);
                Change((newId, symbols[i + 1]), 1);
            }
        }
    }

    /// <summary>Characters of the corpus (weighted by word count) plus the initial alphabet, limited to the most
    /// frequent ones, sorted by code point.</summary>
    private static IEnumerable<string> Alphabet(IReadOnlyDictionary<string, long> wordCounts, BpeTrainerOptions options)
    {
        var alphabet = new Dictionary<int, long>();
        foreach (var (word, count) in wordCounts)
            foreach (var rune in word.EnumerateRunes())
                alphabet[rune.Value] = alphabet.GetValueOrDefault(rune.Value) + count;
        foreach (var c in options.InitialAlphabet)
            alphabet[c] = long.MaxValue;
        var kept = alphabet.ToList();
        if (options.LimitAlphabet is { } limit && kept.Count > limit)
            kept = kept.OrderByDescending(k => k.Value).ThenBy(k => k.Key).Take(limit).ToList();
        return kept.OrderBy(k => k.Key).Select(k => char.ConvertFromUtf32(k.Key));
    }
}
