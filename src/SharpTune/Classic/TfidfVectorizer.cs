using System.Text.Json;

namespace SharpTune.Classic;

/// <summary>Row normalisation of TF-IDF vectors (scikit-learn's <c>norm</c>).</summary>
public enum TfidfNorm
{
    L2,
    L1,
    None,
}

/// <summary>The TF-IDF weighting on top of the counts, with scikit-learn's defaults.</summary>
public sealed record TfidfOptions
{
    public TfidfNorm Norm { get; init; } = TfidfNorm.L2;
    public bool UseIdf { get; init; } = true;
    /// <summary>idf = ln((1 + n) / (1 + df)) + 1, as if one extra document held every term once.</summary>
    public bool SmoothIdf { get; init; } = true;
    /// <summary>tf = 1 + ln(tf).</summary>
    public bool SublinearTf { get; init; }
}

/// <summary>scikit-learn's <c>TfidfVectorizer</c>: counts, then tf (optionally sublinear) × idf, then row norm.
/// Vocabulary and idf are exposed and saved with the model (<see cref="Save"/>/<see cref="Load"/>).</summary>
public sealed class TfidfVectorizer : CountVectorizer
{
    private double[]? _idf;

    public TfidfVectorizer(VectorizerOptions? options = null, TfidfOptions? tfidf = null) : base(options)
    {
        Tfidf = tfidf ?? new TfidfOptions();
    }

    public TfidfOptions Tfidf { get; }

    /// <summary>Inverse document frequency per column (scikit-learn's <c>idf_</c>).</summary>
    public IReadOnlyList<double> Idf => _idf ?? throw NotFitted();

    public override CsrMatrix FitTransform(IReadOnlyList<string> documents)
    {
        var counts = FitCounts(documents);
        var documentFrequency = new int[counts.Columns];
        foreach (var column in counts.Indices)
            documentFrequency[column]++;
        var n = documents.Count + (Tfidf.SmoothIdf ? 1 : 0);
        var offset = Tfidf.SmoothIdf ? 1 : 0;
        _idf = documentFrequency.Select(df => Math.Log((double)n / (df + offset)) + 1.0).ToArray();
        return Weight(counts);
    }

    public override CsrMatrix Transform(IReadOnlyList<string> documents) => Weight(Counts(documents));

    private CsrMatrix Weight(CsrMatrix counts)
    {
        var idf = _idf ?? throw NotFitted();
        var values = counts.Values;
        Parallel.For(0, counts.Rows, row =>
        {
            var start = counts.RowPointers[row];
            var end = counts.RowPointers[row + 1];
            for (var p = start; p < end; p++)
            {
                var tf = Tfidf.SublinearTf ? 1.0 + Math.Log(values[p]) : values[p];
                values[p] = Tfidf.UseIdf ? tf * idf[counts.Indices[p]] : tf;
            }
            var norm = 0.0;
            for (var p = start; p < end; p++)
                norm += Tfidf.Norm == TfidfNorm.L2 ? values[p] * values[p] : Math.Abs(values[p]);
            if (Tfidf.Norm == TfidfNorm.L2)
                norm = Math.Sqrt(norm);
            if (Tfidf.Norm != TfidfNorm.None && norm > 0)
                for (var p = start; p < end; p++)
                    values[p] /= norm;
        });
        return counts;
    }

    /// <summary>Writes options, vocabulary (in column order) and idf as JSON.</summary>
    public void Save(string path)
    {
        var state = new SavedState(Options, Tfidf, FeatureNames.ToArray(), _idf ?? throw NotFitted());
        IO.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(state, Json));
    }

    public static TfidfVectorizer Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException("TF-IDF vectorizer file not found", path);
        var state = JsonSerializer.Deserialize<SavedState>(File.ReadAllText(path), Json)
            ?? throw new InvalidDataException($"{path} holds no TF-IDF vectorizer");
        if (state.Features.Length != state.Idf.Length)
            throw new InvalidDataException($"{path}: {state.Features.Length} terms but {state.Idf.Length} idf values");
        var vectorizer = new TfidfVectorizer(state.Options, state.Tfidf);
        vectorizer.SetVocabulary(state.Features);
        vectorizer._idf = state.Idf;
        return vectorizer;
    }

    private sealed record SavedState(VectorizerOptions Options, TfidfOptions Tfidf, string[] Features, double[] Idf);
}
