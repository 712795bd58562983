using System.Runtime.InteropServices;
using System.Text;

namespace SharpTune.Tokenizers.Training;

public sealed record UnigramTrainerOptions
{
    public int VocabSize { get; init; } = 8000;
    public IReadOnlyList<string> SpecialTokens { get; init; } = [];
    public int MaxPieceLength { get; init; } = 16;
    public double ShrinkingFactor { get; init; } = 0.75;
    public int SubIterations { get; init; } = 2;
    public int SeedSize { get; init; } = 1_000_000;
}

/// <summary>
/// SentencePiece's unigram training exactly as Hugging Face's UnigramTrainer runs it: seeds are the characters and the
/// substrings that are internal nodes of the suffix tree of the distinct words (right-branching repeats), scored
/// frequency × length; then EM (Bayesian M-step with digamma) alternating with pruning by the likelihood lost when a piece
/// is replaced by its second-best segmentation, down to 1.1 × the vocabulary size; finally every character is added back.
/// Hugging Face's quirks are kept on purpose (a training &lt;UNK&gt; at id 0, the alternative-count term of the pruning
/// loss, the final pieces taken in pruning order rather than by score), since the goal is its vocabulary.
/// </summary>
public static class UnigramTrainer
{
    private const string TrainingUnk = "<UNK>";
    private const double UnkPenalty = 10.0;

    public static List<(string Piece, double Score)> Train(IReadOnlyDictionary<string, long> wordCounts, UnigramTrainerOptions options,
        IProgress<double>? progress = null)
    {
        var sentences = wordCounts.Where(w => w.Key.Length > 0).OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => (w.Key, w.Value)).ToArray();
        var requiredChars = sentences.SelectMany(s => s.Key.EnumerateRunes()).Select(r => r.ToString()).Distinct()
            .Order(StringComparer.Ordinal).ToList();
        if (requiredChars.Count > options.VocabSize)
            throw new ArgumentException(
                $"Vocabulary size {options.VocabSize} is too small for the {requiredChars.Count} distinct characters of the corpus");
        List<(string Piece, double Score)> pieces = [(TrainingUnk, double.NaN), .. Seeds(sentences, options)];
        var desired = options.VocabSize * 11 / 10;
        var expectedUpdates = Math.Max(1, ((int)((Math.Log(desired) - Math.Log(pieces.Count)) / Math.Log(options.ShrinkingFactor)) + 1) * options.SubIterations);
        var updates = 0;
        var model = new TrainingModel(pieces);
        while (true)
        {
            for (var i = 0; i < options.SubIterations; i++)
            {
                pieces = MStep(pieces, EStep(model, sentences));
                model = new TrainingModel(pieces);
                progress?.Report(Math.Min(1.0, (double)++updates / expectedUpdates));
            }
            if (pieces.Count <= desired)
                break;
            pieces = Prune(model, pieces, sentences, desired, options.ShrinkingFactor);
            model = new TrainingModel(pieces);
        }
        return Finalize(model, pieces, requiredChars, options);
    }

    /// <summary>
    /// Characters (weighted by word counts), then the right-branching substrings of 2..MaxPieceLength characters that occur
    /// in at least two places of the distinct words (Hugging Face's esaxx suffix-tree nodes), scored occurrences × length;
    /// each list in decreasing (score, text) order, as log probabilities.
    /// </summary>
    private static List<(string Piece, double Score)> Seeds((string Word, long Count)[] sentences, UnigramTrainerOptions options)
    {
        var chars = new Dictionary<int, long>();
        var substrings = new Dictionary<string, Occurrences>(StringComparer.Ordinal);
        var lookup = substrings.GetAlternateLookup<ReadOnlySpan<char>>();
        var starts = new List<int>();
        foreach (var (word, count) in sentences)
        {
            // Code point starts in the word, plus its end.
            starts.Clear();
            for (var i = 0; i < word.Length; i += char.IsSurrogatePair(word, i) ? 2 : 1)
            {
                starts.Add(i);
                var rune = Rune.GetRuneAt(word, i);
                if (rune.Value != 0)
                    chars[rune.Value] = chars.GetValueOrDefault(rune.Value) + count;
            }
            var runes = starts.Count;
            starts.Add(word.Length);
            for (var s = 0; s < runes; s++)
                for (var length = 1; length <= options.MaxPieceLength && s + length <= runes; length++)
                {
                    // The words are joined by \0 in the suffix array: substrings with \0 are no seeds.
                    if (word[starts[s + length - 1]] == '\0')
                        break;
                    if (length == 1)
                        continue;
                    var next = s + length < runes ? Rune.GetRuneAt(word, starts[s + length]).Value : 0;
                    ref var seen = ref CollectionsMarshal.GetValueRefOrAddDefault(lookup, word.AsSpan(starts[s], starts[s + length] - starts[s]), out var exists);
                    if (!exists)
                        seen = new Occurrences { Next = next, Length = length };
                    else if (seen.Next != next)
                        seen.Branching = true;
                    seen.Count++;
                }
        }
        var seeds = chars.OrderByDescending(c => c.Value).ThenByDescending(c => c.Key)
            .Select(c => (new Rune(c.Key).ToString(), (double)c.Value)).ToList();
        seeds.AddRange(substrings.Where(s => s.Value.Branching)
            .Select(s => (Piece: s.Key, Score: (long)s.Value.Count * s.Value.Length))
            .OrderByDescending(s => s.Score).ThenByDescending(s => s.Piece, CodePointComparer.Instance)
            .Take(Math.Max(0, options.SeedSize - seeds.Count))
            .Select(s => (s.Piece, (double)s.Score)));
        var logSum = Math.Log(seeds.Sum(s => s.Item2));
        return seeds.Select(s => (s.Item1, Math.Log(s.Item2) - logSum)).ToList();
    }

    private struct Occurrences
    {
        public int Count, Next, Length;
        public bool Branching; // followed by at least two different characters (or ends a word and continues elsewhere)
    }

    /// <summary>Rust's ordering of strings (by code point), which differs from UTF-16 ordinal order above U+D7FF.</summary>
    private sealed class CodePointComparer : IComparer<string>
    {
        public static readonly CodePointComparer Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = x.AsSpan().EnumerateRunes();
            var b = y.AsSpan().EnumerateRunes();
            while (true)
            {
                var hasA = a.MoveNext();
                var hasB = b.MoveNext();
                if (!hasA || !hasB)
                    return hasA.CompareTo(hasB);
                if (a.Current.Value != b.Current.Value)
                    return a.Current.Value.CompareTo(b.Current.Value);
            }
        }
    }

    /// <summary>Expected piece counts by forward-backward over each word's lattice, weighted by the word count.</summary>
    private static double[] EStep(TrainingModel model, (string Word, long Count)[] sentences) =>
        SumOverChunks(sentences.Length, model.Count, (range, expected) =>
        {
            var lattice = new Lattice();
            for (var i = range.Start; i < range.End; i++)
            {
                lattice.Populate(model, sentences[i].Word);
                lattice.AddMarginals(sentences[i].Count, expected);
            }
        });

    /// <summary>Bayesian M-step: digamma(count) − digamma(total); pieces expected less than half a time are dropped.</summary>
    private static List<(string, double)> MStep(List<(string Piece, double Score)> pieces, double[] expected)
    {
        var kept = new List<(string Piece, double Count)> { (pieces[0].Piece, double.NaN) };
        var sum = 0.0;
        for (var i = 1; i < pieces.Count; i++)
        {
            if (expected[i] < 0.5)
                continue;
            kept.Add((pieces[i].Piece, expected[i]));
            sum += expected[i];
        }
        var logSum = Digamma(sum);
        return kept.Select(p => (p.Piece, Digamma(p.Count) - logSum)).ToList();
    }

    /// <summary>
    /// Keeps the pieces that have no alternative segmentation (or that the Viterbi paths do not use but cannot be
    /// removed), then the others by decreasing likelihood loss, down to max(desired, shrinking factor × size).
    /// </summary>
    private static List<(string, double)> Prune(TrainingModel model, List<(string Piece, double Score)> pieces,
        (string Word, long Count)[] sentences, int desired, double shrinkingFactor)
    {
        // How each piece would be segmented without itself: the second best segmentation of its own text.
        var alwaysKeep = new bool[pieces.Count];
        var alternatives = new int[pieces.Count][];
        Parallel.For(1, pieces.Count, () => new Lattice(), (id, _, lattice) =>
        {
            lattice.Populate(model, pieces[id].Piece);
            (alwaysKeep[id], alternatives[id]) = lattice.SecondBest(id);
            return lattice;
        }, _ => { });

        // Viterbi frequency of every piece over the corpus.
        var vsum = sentences.Sum(s => (double)s.Count);
        var freq = SumOverChunks(sentences.Length, pieces.Count, (range, local) =>
        {
            var lattice = new Lattice();
            var path = new List<int>();
            for (var i = range.Start; i < range.End; i++)
            {
                lattice.Populate(model, sentences[i].Word);
                lattice.Viterbi(-1, path);
                foreach (var id in path)
                    local[id] += sentences[i].Count;
            }
        });
        var sum = freq.Sum();
        var logSum = Math.Log(sum);
        var kept = new List<(string, double)> { pieces[0] };
        var candidates = new List<(int Id, double Loss)>();
        for (var id = 1; id < pieces.Count; id++)
        {
            if (freq[id] == 0 && !alwaysKeep[id])
                continue; // not on any Viterbi path: safe to remove
            if (alternatives[id].Length == 0)
            {
                kept.Add(pieces[id]);
                continue;
            }
            if (freq[id] == 0)
                continue;
            var logProbPiece = Math.Log(freq[id]) - logSum;
            // Hugging Face counts every piece here (alternatives.len() is its per-piece table), not this piece's
            // alternatives as SentencePiece does; kept for the same ranking.
            var logSumAlt = Math.Log(sum + freq[id] * (pieces.Count - 1));
            var logProbAlt = 0.0;
            foreach (var alt in alternatives[id])
                logProbAlt += Math.Log(freq[alt] + freq[id]) - logSumAlt;
            candidates.Add((id, freq[id] / vsum * (logProbPiece - logProbAlt)));
        }
        var prunedSize = Math.Max(desired, (int)(pieces.Count * shrinkingFactor));
        foreach (var (id, _) in candidates.OrderByDescending(c => c.Loss))
        {
            if (kept.Count == prunedSize)
                break;
            kept.Add(pieces[id]);
        }
        return kept;
    }

    /// <summary>Every character (absent ones just below the lowest score), then the pieces in their current order up to the size.</summary>
    private static List<(string Piece, double Score)> Finalize(TrainingModel model, List<(string Piece, double Score)> pieces,
        List<string> requiredChars, UnigramTrainerOptions options)
    {
        var scores = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (piece, score) in pieces)
            scores.TryAdd(piece, score);
        var inserted = new HashSet<string>(StringComparer.Ordinal) { TrainingUnk };
        var final = new List<(string Piece, double Score)>();
        var penalty = 0.0;
        foreach (var c in requiredChars)
        {
            inserted.Add(c);
            if (scores.TryGetValue(c, out var score))
                final.Add((c, score));
            else
            {
                final.Add((c, model.MinScore + penalty));
                penalty += 0.0001;
            }
        }
        var target = options.VocabSize - options.SpecialTokens.Count;
        foreach (var (piece, score) in pieces)
        {
            if (!inserted.Add(piece))
                continue;
            final.Add((piece, double.IsNaN(score) ? 0 : score));
            if (final.Count == target)
                break;
        }
        return [.. options.SpecialTokens.Select(s => (s, 0.0)), .. final.OrderByDescending(p => p.Score)];
    }

    /// <summary>Runs <paramref name="work"/> over fixed chunks in parallel and adds the chunk sums in order (deterministic).</summary>
    private static double[] SumOverChunks(int count, int size, Action<(int Start, int End), double[]> work)
    {
        var chunks = Math.Max(1, Math.Min(64, count / 64));
        var partial = new double[chunks][];
        Parallel.For(0, chunks, c =>
        {
            partial[c] = new double[size];
            work(((int)((long)count * c / chunks), (int)((long)count * (c + 1) / chunks)), partial[c]);
        });
        var total = new double[size];
        foreach (var p in partial)
            for (var i = 0; i < size; i++)
                total[i] += p[i];
        return total;
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

    /// <summary>The pieces being trained (id 0: the training unknown token), looked up by span.</summary>
    private sealed class TrainingModel
    {
        public TrainingModel(List<(string Piece, double Score)> pieces)
        {
            Pieces = pieces;
            var index = new Dictionary<string, int>(pieces.Count, StringComparer.Ordinal);
            MinScore = double.PositiveInfinity;
            for (var i = 0; i < pieces.Count; i++)
            {
                index.TryAdd(pieces[i].Piece, i);
                MaxLength = Math.Max(MaxLength, pieces[i].Piece.Length);
                if (pieces[i].Score < MinScore) // NaN (the unknown token) never counts
                    MinScore = pieces[i].Score;
            }
            Lookup = index.GetAlternateLookup<ReadOnlySpan<char>>();
        }

        public List<(string Piece, double Score)> Pieces { get; }
        public Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> Lookup { get; }
        public int MaxLength { get; }
        public double MinScore { get; }
        public int Count => Pieces.Count;
    }

    /// <summary>
    /// Hugging Face's unigram lattice over one word: nodes in insertion order (by start, then length; an unknown node
    /// where no single-character piece starts), which fixes the tie-breaking of Viterbi and the order of the sums.
    /// </summary>
    private sealed class Lattice
    {
        private readonly List<(int Start, int End, int Id, double Score)> _nodes = [];
        private int[] _beginFirst = [];  // first node starting at each position (nodes are sorted by start)
        private int[] _endFirst = [];    // node indices grouped by end position, each group in insertion order
        private int[] _byEnd = [];
        private double[] _alpha = [], _beta = [], _best = [];
        private int[] _back = [];
        private int _length;

        public void Populate(TrainingModel model, string word)
        {
            _length = word.Length;
            _nodes.Clear();
            var unkScore = model.MinScore - UnkPenalty;
            for (var pos = 0; pos < word.Length;)
            {
                var charLength = char.IsSurrogatePair(word, pos) ? 2 : 1;
                var single = false;
                for (var length = 1; length <= model.MaxLength && pos + length <= word.Length; length++)
                    if (model.Lookup.TryGetValue(word.AsSpan(pos, length), out var id))
                    {
                        _nodes.Add((pos, pos + length, id, model.Pieces[id].Score));
                        single |= length == charLength;
                    }
                if (!single)
                    _nodes.Add((pos, pos + charLength, 0, unkScore));
                pos += charLength;
            }
            var n = _nodes.Count;
            if (_beginFirst.Length < _length + 2)
            {
                _beginFirst = new int[_length + 2];
                _endFirst = new int[_length + 2];
            }
            if (_byEnd.Length < n)
            {
                _byEnd = new int[n];
                _alpha = new double[n];
                _beta = new double[n];
                _best = new double[n];
                _back = new int[n];
            }
            Array.Clear(_endFirst, 0, _length + 2);
            for (var i = 0; i < n; i++)
                _endFirst[_nodes[i].End + 1]++;
            for (var p = 1; p < _length + 2; p++)
                _endFirst[p] += _endFirst[p - 1];
            var fill = _beginFirst; // reused as a cursor, then rebuilt below
            Array.Copy(_endFirst, fill, _length + 2);
            for (var i = 0; i < n; i++)
                _byEnd[fill[_nodes[i].End]++] = i;
            for (int p = 0, i = 0; p <= _length; p++)
            {
                while (i < n && _nodes[i].Start < p)
                    i++;
                _beginFirst[p] = i;
            }
            _beginFirst[_length + 1] = n;
        }

        private (int From, int To) Begins(int pos) => (_beginFirst[pos], pos + 1 <= _length ? _beginFirst[pos + 1] : _nodes.Count);
        private (int From, int To) Ends(int pos) => (_endFirst[pos], _endFirst[pos + 1]);

        /// <summary>Adds count × posterior of every node to <paramref name="expected"/> (Lattice::populate_marginal).</summary>
        public void AddMarginals(long count, double[] expected)
        {
            // alpha: log-sum over paths reaching a node's start; beta: from a node's end. BOS/EOS have score 0.
            for (var pos = 0; pos <= _length; pos++)
            {
                var (from, to) = Begins(pos);
                if (from == to)
                    continue;
                var value = pos == 0 ? 0.0 : LeftSum(pos);
                for (var r = from; r < to; r++)
                    _alpha[r] = value;
            }
            var z = LeftSum(_length);
            for (var pos = _length; pos >= 0; pos--)
            {
                var (from, to) = Ends(pos);
                if (from == to)
                    continue;
                var value = pos == _length ? 0.0 : RightSum(pos);
                for (var k = from; k < to; k++)
                    _beta[_byEnd[k]] = value;
            }
            if (double.IsNaN(z))
                throw new InvalidOperationException("Unigram training: the likelihood of a word is NaN");
            for (var i = 0; i < _nodes.Count; i++)
                expected[_nodes[i].Id] += count * Math.Exp(_alpha[i] + _nodes[i].Score + _beta[i] - z);
        }

        private double LeftSum(int pos)
        {
            var (from, to) = Ends(pos);
            var sum = 0.0;
            for (var k = from; k < to; k++)
            {
                var l = _byEnd[k];
                sum = LogSumExp(sum, _nodes[l].Score + _alpha[l], k == from);
            }
            return sum;
        }

        private double RightSum(int pos)
        {
            var (from, to) = Begins(pos);
            var sum = 0.0;
            for (var r = from; r < to; r++)
                sum = LogSumExp(sum, _nodes[r].Score + _beta[r], r == from);
            return sum;
        }

        private static double LogSumExp(double x, double y, bool first)
        {
            if (first)
                return y;
            var (min, max) = x > y ? (y, x) : (x, y);
            return max > min + 50 ? max : max + Math.Log(Math.Exp(min - max) + 1);
        }

        /// <summary>Best path's piece ids (Lattice::viterbi: the first best left node wins ties), skipping node <paramref name="excluded"/>.</summary>
        public void Viterbi(int excluded, List<int> path)
        {
            path.Clear();
            var bestEnd = 0.0;
            for (var pos = 0; pos <= _length; pos++)
            {
                var (from, to) = Begins(pos);
                if (from == to && pos < _length)
                    continue;
                var prev = pos == 0 ? -1 : Best(pos, excluded, out bestEnd);
                if (pos > 0 && prev == -2)
                    return; // no path reaches this position
                if (pos == _length)
                {
                    for (var node = prev; node >= 0; node = _back[node])
                        path.Add(_nodes[node].Id);
                    path.Reverse();
                    return;
                }
                for (var r = from; r < to; r++)
                {
                    _best[r] = bestEnd + _nodes[r].Score;
                    _back[r] = prev;
                }
            }
        }

        /// <summary>The best node ending at <paramref name="pos"/> (−1: BOS, −2: none) and its path score.</summary>
        private int Best(int pos, int excluded, out double score)
        {
            score = 0;
            if (pos == 0)
                return -1;
            var (from, to) = Ends(pos);
            var best = -2;
            for (var k = from; k < to; k++)
            {
                var l = _byEnd[k];
                if (l == excluded)
                    continue;
                if (best == -2 || _best[l] > score)
                {
                    best = l;
                    score = _best[l];
                }
            }
            return best;
        }

        /// <summary>
        /// Lattice::nbest(2) as the pruning uses it: whether the piece must be kept, and the pieces of its second best
        /// segmentation when the piece itself is the best one.
        /// </summary>
        public (bool AlwaysKeep, int[] Alternatives) SecondBest(int self)
        {
            var path = new List<int>();
            Viterbi(-1, path);
            if (path.Count >= 2)
                return (false, []);
            // Every position has a node (an unknown one at worst), so only the whole-piece node itself is excluded.
            Viterbi(_nodes.FindIndex(n => n.Start == 0 && n.End == _length && n.Id == self), path);
            return path.Count == 0 ? (true, []) : (true, path.ToArray());
        }
    }
}
