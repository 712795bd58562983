using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace SharpTune.Classic;

/// <summary>Options shared by <see cref="CountVectorizer"/> and <see cref="TfidfVectorizer"/>, with scikit-learn's
/// names and defaults.</summary>
public sealed record VectorizerOptions
{
    public TextAnalyzerKind Analyzer { get; init; } = TextAnalyzerKind.Word;
    public bool Lowercase { get; init; } = true;
    public StripAccents StripAccents { get; init; } = StripAccents.None;
    /// <summary>Regular expression whose matches are the tokens (a single capture group, when present, is the token).</summary>
    public string TokenPattern { get; init; } = TextAnalyzer.DefaultTokenPattern;
    /// <summary>A custom tokenizer; overrides <see cref="TokenPattern"/>. Not saved with the model.</summary>
    [JsonIgnore] public Func<string, IReadOnlyList<string>>? Tokenizer { get; init; }
    public IReadOnlyList<string>? StopWords { get; init; }
    public (int Min, int Max) NgramRange { get; init; } = (1, 1);
    /// <summary>Ignore terms in more documents than this (count, or proportion when given as a real number).</summary>
    public DocumentFrequency MaxDf { get; init; } = 1.0;
    /// <summary>Ignore terms in fewer documents than this.</summary>
    public DocumentFrequency MinDf { get; init; } = 1;
    /// <summary>Keep only the most frequent terms across the corpus.</summary>
    public int? MaxFeatures { get; init; }
    /// <summary>Counts become 0/1.</summary>
    public bool Binary { get; init; }
}

/// <summary>scikit-learn's <c>CountVectorizer</c>: a vocabulary of n-grams (sorted, as scikit-learn assigns indices)
/// and documents as sparse count rows.</summary>
public class CountVectorizer
{
    private Dictionary<string, int>? _vocabulary;
    private string[]? _features;

    public CountVectorizer(VectorizerOptions? options = null)
    {
        Options = options ?? new VectorizerOptions();
        Analyzer = new TextAnalyzer(Options);
    }

    public VectorizerOptions Options { get; }
    public TextAnalyzer Analyzer { get; }
    public bool IsFitted => _vocabulary is not null;

    /// <summary>Term → column (scikit-learn's <c>vocabulary_</c>).</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocabulary ?? throw NotFitted();

    /// <summary>Column → term (<c>get_feature_names_out()</c>).</summary>
    public IReadOnlyList<string> FeatureNames => _features ?? throw NotFitted();

    public CountVectorizer Fit(IReadOnlyList<string> documents)
    {
        FitTransform(documents);
        return this;
    }

    /// <summary>Learns the vocabulary and returns the count matrix of the documents.</summary>
    public virtual CsrMatrix FitTransform(IReadOnlyList<string> documents) => FitCounts(documents);

    public virtual CsrMatrix Transform(IReadOnlyList<string> documents) => Counts(documents);

    protected CsrMatrix FitCounts(IReadOnlyList<string> documents)
    {
        // Chunks of documents are counted in parallel, each with its own provisional vocabulary; the chunk vocabularies
        // are then merged (one lookup per distinct term and chunk, not per occurrence). scikit-learn then prunes by
        // document frequency, sorts the terms and numbers the columns in that order.
        var chunks = Partition(documents.Count);
        var parts = new (Dictionary<string, int> Vocabulary, RowBlock Rows)[chunks.Count];
        Parallel.For(0, chunks.Count, c =>
        {
            var local = new Dictionary<string, int>(StringComparer.Ordinal);
            var lookup = local.GetAlternateLookup<ReadOnlySpan<char>>();
            parts[c] = (local, CountRows(documents, chunks[c], [MethodImpl(MethodImplOptions.AggressiveOptimization)] (ReadOnlySpan<char> feature) =>
            {
                if (!lookup.TryGetValue(feature, out var id))
                {
                    id = local.Count;
                    lookup[feature] = id;
                }
                return id;
            }));
        });
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (local, rows) in parts)
        {
            var toGlobal = new int[local.Count];
            foreach (var (term, id) in local)
            {
                if (!vocabulary.TryGetValue(term, out var global))
                    vocabulary[term] = global = vocabulary.Count;
                toGlobal[id] = global;
            }
            for (var p = 0; p < rows.Indices.Count; p++)
                rows.Indices[p] = toGlobal[rows.Indices[p]];
        }
        if (vocabulary.Count == 0)
            throw new ArgumentException("empty vocabulary; perhaps the documents only contain stop words");

        var documentFrequency = new int[vocabulary.Count];
        var totals = new double[vocabulary.Count];
        foreach (var (_, rows) in parts)
            for (var p = 0; p < rows.Indices.Count; p++)
            {
                documentFrequency[rows.Indices[p]]++;
                totals[rows.Indices[p]] += rows.Values[p];
            }
        var terms = new string[vocabulary.Count];
        foreach (var (term, id) in vocabulary)
            terms[id] = term;
        var keep = SelectTerms(terms, documentFrequency, totals, documents.Count);
        keep.Sort((a, b) => CodePointComparer.Instance.Compare(terms[a], terms[b]));
        var remap = new int[vocabulary.Count];
        Array.Fill(remap, -1);
        for (var column = 0; column < keep.Count; column++)
            remap[keep[column]] = column;
        SetVocabulary(keep.Select(id => terms[id]).ToArray());
        return Assemble(parts.Select(p => p.Rows).ToList(), keep.Count, remap);
    }

    private List<int> SelectTerms(string[] terms, int[] documentFrequency, double[] totals, int documents)
    {
        var maxCount = Options.MaxDf.DocumentCount(documents);
        var minCount = Options.MinDf.DocumentCount(documents);
        if (maxCount < minCount)
            throw new ArgumentException($"max_df ({Options.MaxDf}) corresponds to fewer documents than min_df ({Options.MinDf})");
        var keep = Enumerable.Range(0, terms.Length)
            .Where(id => documentFrequency[id] <= maxCount && documentFrequency[id] >= minCount)
            .ToList();
        if (Options.MaxFeatures is { } limit && keep.Count > limit)
        {
            // Most frequent first; ties in alphabetical order (scikit-learn sorts before limiting).
            keep = keep
                .OrderByDescending(id => totals[id])
                .ThenBy(id => terms[id], CodePointComparer.Instance)
                .Take(limit)
                .ToList();
        }
        if (keep.Count == 0)
            throw new ArgumentException("after pruning, no terms remain; try a lower min_df or a higher max_df");
        return keep;
    }

    protected CsrMatrix Counts(IReadOnlyList<string> documents)
    {
        var vocabulary = _vocabulary ?? throw NotFitted();
        var chunks = Partition(documents.Count);
        var parts = new RowBlock[chunks.Count];
        Parallel.For(0, chunks.Count, c =>
        {
            var lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
            parts[c] = CountRows(documents, chunks[c], feature => lookup.TryGetValue(feature, out var column) ? column : -1);
        });
        return Assemble(parts, vocabulary.Count, remap: null);
    }

    /// <summary>Rows of a chunk of documents: per row, the distinct term ids and their counts.</summary>
    private sealed record RowBlock(List<int> Pointers, List<int> Indices, List<double> Values);

    private static List<(int Start, int End)> Partition(int documents)
    {
        var chunks = Math.Max(1, Math.Min(Environment.ProcessorCount * 2, documents / 512));
        return Enumerable.Range(0, chunks).Select(c => ((int)((long)documents * c / chunks), (int)((long)documents * (c + 1) / chunks))).ToList();
    }

    /// <summary>Counts the features of documents [start, end); <paramref name="idOf"/> maps a feature to its id, or -1
    /// to ignore it (unknown at transform time).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private RowBlock CountRows(IReadOnlyList<string> documents, (int Start, int End) range, Func<ReadOnlySpan<char>, int> idOf)
    {
        var block = new RowBlock([0], new List<int>(), new List<double>());
        var counts = new Dictionary<int, int>();
        // Called once per feature occurrence: compiled optimised from the first call (no tier-0 phase).
        Action<ReadOnlySpan<char>> count = [MethodImpl(MethodImplOptions.AggressiveOptimization)] (ReadOnlySpan<char> feature) =>
        {
            var id = idOf(feature);
            if (id >= 0)
                counts[id] = counts.GetValueOrDefault(id) + 1;
        };
        for (var d = range.Start; d < range.End; d++)
        {
            counts.Clear();
            Analyzer.Analyze(documents[d], count);
            foreach (var (id, n) in counts)
            {
                block.Indices.Add(id);
                block.Values.Add(Options.Binary ? 1 : n);
            }
            block.Pointers.Add(block.Indices.Count);
        }
        return block;
    }

    /// <summary>One CSR matrix from the blocks, columns renumbered by <paramref name="remap"/> (-1 drops a term) and
    /// sorted within each row.</summary>
    private static CsrMatrix Assemble(IReadOnlyList<RowBlock> blocks, int columns, int[]? remap)
    {
        var rows = blocks.Sum(b => b.Pointers.Count - 1);
        var pointers = new int[rows + 1];
        var indices = new int[blocks.Sum(b => b.Indices.Count)];
        var values = new double[indices.Length];
        var row = 0;
        var at = 0;
        foreach (var block in blocks)
            for (var r = 0; r + 1 < block.Pointers.Count; r++)
            {
                var start = at;
                for (var p = block.Pointers[r]; p < block.Pointers[r + 1]; p++)
                {
                    var column = remap is null ? block.Indices[p] : remap[block.Indices[p]];
                    if (column < 0)
                        continue;
                    indices[at] = column;
                    values[at++] = block.Values[p];
                }
                indices.AsSpan(start, at - start).Sort(values.AsSpan(start, at - start));
                pointers[++row] = at;
            }
        return new CsrMatrix(rows, columns, pointers, indices[..at], values[..at]);
    }

    protected void SetVocabulary(IReadOnlyList<string> features)
    {
        _features = features.ToArray();
        _vocabulary = new Dictionary<string, int>(_features.Length, StringComparer.Ordinal);
        for (var column = 0; column < _features.Length; column++)
            if (!_vocabulary.TryAdd(_features[column], column))
                throw new InvalidDataException($"duplicate term '{_features[column]}' in the saved vocabulary");
    }

    protected static InvalidOperationException NotFitted() => new("the vectorizer is not fitted; call Fit or FitTransform first");

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        IncludeFields = true,
        Converters = { new JsonStringEnumConverter() },
    };
}

/// <summary>Orders strings by Unicode code point, as Python's <c>sorted()</c> does (UTF-16 ordinal order differs
/// for characters above U+E000 against surrogate pairs).</summary>
public sealed class CodePointComparer : IComparer<string>
{
    public static readonly CodePointComparer Instance = new();

    public int Compare(string? x, string? y)
    {
        if (x is null || y is null)
            return x is null ? (y is null ? 0 : -1) : 1;
        var length = Math.Min(x.Length, y.Length);
        for (var i = 0; i < length; i++)
        {
            var (a, b) = (x[i], y[i]);
            if (a == b)
                continue;
            if (a >= 0xD800 && b >= 0xD800)
                return Fix(a).CompareTo(Fix(b));
            return a.CompareTo(b);
        }
        return x.Length.CompareTo(y.Length);
    }

    private static int Fix(char c) => c >= 0xE000 ? c - 0x800 : c + 0x2000;
}
