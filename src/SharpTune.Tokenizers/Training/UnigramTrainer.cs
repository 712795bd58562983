using SharpTune.Tokenizers.Models;

namespace SharpTune.Tokenizers.Training;

public sealed record UnigramTrainerOptions
{
    public int VocabSize { get; init; } = 8000;
    public IReadOnlyList<string> SpecialTokens { get; init; } = [];
    public string? UnkToken { get; init; }
    public int MaxPieceLength { get; init; } = 16;
    public double ShrinkingFactor { get; init; } = 0.75;
    public int SubIterations { get; init; } = 2;
    public int SeedSize { get; init; } = 1_000_000;
}

/// <summary>
/// SentencePiece's unigram training, after Hugging Face's UnigramTrainer: frequent substrings as seeds, then EM
/// (Bayesian M-step with digamma) alternating with pruning of the pieces whose removal costs the least likelihood.
/// Seeds are all repeated substrings (Hugging Face keeps only suffix-array branching ones), so results differ slightly.
/// </summary>
public static class UnigramTrainer
{
    public static List<(string Piece, double Score)> Train(IReadOnlyDictionary<string, long> wordCounts, UnigramTrainerOptions options,
        IProgress<double>? progress = null)
    {
        var sentences = wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => (w.Key, w.Value)).ToList();
        var pieces = Seeds(sentences, options);
        var requiredChars = sentences.SelectMany(s => s.Key.EnumerateRunes()).Select(r => r.ToString()).ToHashSet();
        var target = options.VocabSize - options.SpecialTokens.Count;
        var desired = target * 11 / 10;
        var initial = pieces.Count;
        while (true)
        {
            for (var i = 0; i < options.SubIterations; i++)
            {
                var expected = EStep(pieces, sentences);
                pieces = MStep(pieces, expected);
            }
            progress?.Report(Math.Clamp((double)(initial - pieces.Count) / Math.Max(1, initial - desired), 0, 1));
            if (pieces.Count <= desired)
                break;
            pieces = Prune(pieces, sentences, requiredChars, desired, options.ShrinkingFactor);
        }
        // Final vocabulary: every character, then the best pieces by score; special tokens first with score 0.
        var byScore = pieces.OrderByDescending(p => p.Score).ToList();
        var final = new List<(string, double)>();
        var taken = new HashSet<string>(options.SpecialTokens);
        var minScore = byScore.Count > 0 ? byScore.Min(p => p.Score) : 0;
        foreach (var c in requiredChars.Where(c => !byScore.Any(p => p.Piece == c)).Order(StringComparer.Ordinal))
            byScore.Add((c, minScore - 1));
        var chars = byScore.Where(p => requiredChars.Contains(p.Piece)).ToList();
        var budget = target - chars.Count;
        foreach (var p in byScore)
        {
            if (taken.Contains(p.Piece))
                continue;
            if (requiredChars.Contains(p.Piece) || budget-- > 0)
            {
                final.Add(p);
                taken.Add(p.Piece);
            }
        }
        return options.SpecialTokens.Select(s => (s, 0.0)).Concat(final.OrderByDescending(p => p.Item2)).ToList();
    }

    /// <summary>Characters and repeated substrings (counted over distinct words, as Hugging Face does), scored freq × length.</summary>
    private static List<(string Piece, double Score)> Seeds(List<(string Word, long Count)> sentences, UnigramTrainerOptions options)
    {
        var chars = new Dictionary<string, long>();
        var substrings = new Dictionary<string, long>();
        foreach (var (word, _) in sentences)
        {
            var runes = word.EnumerateRunes().Select(r => r.ToString()).ToArray();
            foreach (var r in runes)
                chars[r] = chars.GetValueOrDefault(r) + 1;
            for (var start = 0; start < runes.Length; start++)
                for (var length = 2; length <= options.MaxPieceLength && start + length <= runes.Length; length++)
                {
                    // ▁ only at the start of a piece (pieces do not span words).
                    if (runes[start + length - 1] == "\u2581")
                        break;
                    var piece = string.Concat(runes.AsSpan(start, length));
                    substrings[piece] = substrings.GetValueOrDefault(piece) + 1;
                }
        }
        var seeds = chars.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).Select(c => (c.Key, (double)c.Value)).ToList();
        seeds.AddRange(substrings.Where(s => s.Value >= 2).Select(s => (s.Key, (double)s.Value * s.Key.EnumerateRunes().Count()))
            .OrderByDescending(s => s.Item2).ThenBy(s => s.Key, StringComparer.Ordinal).Take(options.SeedSize));
        var logSum = Math.Log(seeds.Sum(s => s.Item2));
        return seeds.Select(s => (s.Item1, Math.Log(s.Item2) - logSum)).ToList();
    }

    /// <summary>Expected piece counts by forward-backward over each word's lattice, weighted by the word count.</summary>
    private static double[] EStep(List<(string Piece, double Score)> pieces, List<(string Word, long Count)> sentences)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < pieces.Count; i++)
            index.TryAdd(pieces[i].Piece, i);
        var lookup = index.GetAlternateLookup<ReadOnlySpan<char>>();
        var maxLength = pieces.Max(p => p.Piece.Length);
        var expected = new double[pieces.Count];
        var gate = new object();
        Parallel.ForEach(sentences, () => new double[pieces.Count], (sentence, _, local) =>
        {
            var (word, count) = sentence;
            var n = word.Length;
            var edges = new List<(int Start, int End, int Id)>();
            for (var s = 0; s < n; s++)
                for (var l = 1; l <= maxLength && s + l <= n; l++)
                    if (lookup.TryGetValue(word.AsSpan(s, l), out var id))
                        edges.Add((s, s + l, id));
            var alpha = new double[n + 1];
            var beta = new double[n + 1];
            Array.Fill(alpha, double.NegativeInfinity);
            Array.Fill(beta, double.NegativeInfinity);
            alpha[0] = 0;
            beta[n] = 0;
            foreach (var e in edges.OrderBy(e => e.End))
                alpha[e.End] = LogAdd(alpha[e.End], alpha[e.Start] + pieces[e.Id].Score);
            foreach (var e in edges.OrderByDescending(e => e.Start))
                beta[e.Start] = LogAdd(beta[e.Start], beta[e.End] + pieces[e.Id].Score);
            var z = alpha[n];
            if (double.IsNegativeInfinity(z))
                return local;
            foreach (var e in edges)
                local[e.Id] += count * Math.Exp(alpha[e.Start] + pieces[e.Id].Score + beta[e.End] - z);
            return local;
        }, local =>
        {
            lock (gate)
                for (var i = 0; i < expected.Length; i++)
                    expected[i] += local[i];
        });
        return expected;
    }

    private static List<(string, double)> MStep(List<(string Piece, double Score)> pieces, double[] expected)
    {
        var kept = new List<(string, double)>();
        var sum = 0.0;
        for (var i = 0; i < pieces.Count; i++)
        {
            if (expected[i] < 0.5)
                continue;
            kept.Add((pieces[i].Piece, expected[i]));
            sum += expected[i];
        }
        var logSum = Digamma(sum);
        return kept.Select(p => (p.Item1, Digamma(p.Item2) - logSum)).ToList();
    }

    /// <summary>Drops the pieces whose removal loses the least likelihood (their best alternative segmentation is nearly as good).</summary>
    private static List<(string, double)> Prune(List<(string Piece, double Score)> pieces, List<(string Word, long Count)> sentences,
        HashSet<string> requiredChars, int desired, double shrinkingFactor)
    {
        var model = new UnigramModel(pieces, null, false);
        var frequency = new double[pieces.Count];
        foreach (var (word, count) in sentences)
            foreach (var (start, end) in model.Viterbi(word))
                if (model.TokenToId(word[start..end]) is { } id)
                    frequency[id] += count;
        var total = frequency.Sum();
        var candidates = new List<(int Id, double Loss)>();
        var alternativeModel = model;
        for (var i = 0; i < pieces.Count; i++)
        {
            var piece = pieces[i].Piece;
            if (requiredChars.Contains(piece))
                continue;
            if (frequency[i] == 0)
            {
                candidates.Add((i, double.NegativeInfinity));
                continue;
            }
            // Best segmentation of the piece by the other pieces: the second best path when the piece itself wins.
            var alternatives = AlternativeSegmentation(alternativeModel, piece, i, pieces);
            var logProbPiece = Math.Log(frequency[i]) - Math.Log(total);
            var newTotal = total + frequency[i] * (alternatives.Count - 1);
            var logProbAlt = alternatives.Sum(a => Math.Log(frequency[a] + frequency[i]) - Math.Log(newTotal));
            candidates.Add((i, frequency[i] / total * (logProbPiece - logProbAlt)));
        }
        var keep = Math.Max(desired, (int)(shrinkingFactor * pieces.Count));
        var removable = pieces.Count - keep;
        var removed = candidates.OrderBy(c => c.Loss).Take(Math.Max(0, removable)).Select(c => c.Id).ToHashSet();
        return pieces.Where((_, i) => !removed.Contains(i)).ToList();
    }

    private static List<int> AlternativeSegmentation(UnigramModel model, string piece, int self, List<(string Piece, double Score)> pieces)
    {
        // Viterbi over the piece's chars with every piece except itself.
        var n = piece.Length;
        var best = new double[n + 1];
        var back = new (int Start, int Id)[n + 1];
        Array.Fill(best, double.NegativeInfinity);
        best[0] = 0;
        for (var s = 0; s < n; s++)
        {
            if (double.IsNegativeInfinity(best[s]))
                continue;
            for (var e = s + 1; e <= n; e++)
                if (model.TokenToId(piece[s..e]) is { } id && id != self && best[s] + pieces[id].Score > best[e])
                {
                    best[e] = best[s] + pieces[id].Score;
                    back[e] = (s, id);
                }
        }
        var result = new List<int>();
        if (double.IsNegativeInfinity(best[n]))
            return result;
        for (var e = n; e > 0; e = back[e].Start)
            result.Add(back[e].Id);
        return result;
    }

    private static double LogAdd(double a, double b)
    {
        if (double.IsNegativeInfinity(a))
            return b;
        if (double.IsNegativeInfinity(b))
            return a;
        return Math.Max(a, b) + Math.Log(1 + Math.Exp(-Math.Abs(a - b)));
    }

    private static double Digamma(double x)
    {
        var result = 0.0;
        for (; x < 7; x++)
            result -= 1 / x;
        x -= 0.5;
        var xx = 1 / x;
        var xx2 = xx * xx;
        var xx4 = xx2 * xx2;
        return result + Math.Log(x) + 1.0 / 24 * xx2 - 7.0 / 960 * xx4 + 31.0 / 8064 * xx4 * xx2 - 127.0 / 30720 * xx4 * xx4;
    }
}
