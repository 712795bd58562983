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
        // Provisional ids in order of first appearance; scikit-learn then sorts the terms and prunes by frequency.
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        var rows = new List<(int Term, double Count)>[documents.Count];
        var documentFrequency = new List<int>();
        var totals = new List<double>();
        var counts = new Dictionary<int, int>();
        for (var d = 0; d < documents.Count; d++)
        {
            counts.Clear();
            Analyzer.Analyze(documents[d], feature =>
            {
                if (!lookup.TryGetValue(feature, out var id))
                {
                    id = vocabulary.Count;
                    lookup[feature] = id;
                    documentFrequency.Add(0);
                    totals.Add(0);
                }
                counts[id] = counts.GetValueOrDefault(id) + 1;
            });
            var row = new List<(int, double)>(counts.Count);
            foreach (var (id, count) in counts)
            {
                documentFrequency[id]++;
                totals[id] += count;
                row.Add((id, Options.Binary ? 1 : count));
            }
            rows[d] = row;
        }
        if (vocabulary.Count == 0)
            throw new ArgumentException("empty vocabulary; perhaps the documents only contain stop words");

        var terms = new string[vocabulary.Count];
        foreach (var (term, id) in vocabulary)
            terms[id] = term;
        var keep = SelectTerms(terms, documentFrequency, totals, documents.Count);
        var kept = keep.Select(id => (Term: terms[id], Id: id)).ToList();
        kept.Sort((a, b) => CodePointComparer.Instance.Compare(a.Term, b.Term));
        var remap = new int[vocabulary.Count];
        Array.Fill(remap, -1);
        for (var column = 0; column < kept.Count; column++)
            remap[kept[column].Id] = column;
        _features = kept.Select(k => k.Term).ToArray();
        _vocabulary = new Dictionary<string, int>(_features.Length, StringComparer.Ordinal);
        for (var column = 0; column < _features.Length; column++)
            _vocabulary[_features[column]] = column;
        return BuildCsr(rows.Select(row => row.Where(e => remap[e.Term] >= 0).Select(e => (remap[e.Term], e.Count))).ToList(), _features.Length);
    }

    private List<int> SelectTerms(string[] terms, List<int> documentFrequency, List<double> totals, int documents)
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
        var lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        var rows = new List<(int, double)>[documents.Count];
        Parallel.For(0, documents.Count, () => new Dictionary<int, int>(), (d, _, counts) =>
        {
            counts.Clear();
            Analyzer.Analyze(documents[d], feature =>
            {
                if (lookup.TryGetValue(feature, out var column))
                    counts[column] = counts.GetValueOrDefault(column) + 1;
            });
            rows[d] = counts.Select(c => (c.Key, Options.Binary ? 1.0 : c.Value)).ToList();
            return counts;
        }, _ => { });
        return BuildCsr(rows, vocabulary.Count);
    }

    private static CsrMatrix BuildCsr(IReadOnlyList<IEnumerable<(int Column, double Value)>> rows, int columns)
    {
        var pointers = new int[rows.Count + 1];
        var indices = new List<int>();
        var values = new List<double>();
        for (var r = 0; r < rows.Count; r++)
        {
            foreach (var (column, value) in rows[r].OrderBy(e => e.Column))
            {
                indices.Add(column);
                values.Add(value);
            }
            pointers[r + 1] = indices.Count;
        }
        return new CsrMatrix(rows.Count, columns, pointers, indices.ToArray(), values.ToArray());
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
