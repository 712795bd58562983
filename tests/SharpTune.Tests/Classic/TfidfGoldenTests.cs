using System.Text.Json;
using SharpTune.Classic;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Classic;

/// <summary>Parity with scikit-learn's TfidfVectorizer and LogisticRegression on tests/fixtures/classic/tfidf_golden.json.</summary>
public sealed class TfidfGoldenTests
{
    private static readonly JsonElement Golden = JsonDocument.Parse(File.ReadAllText(RepoPaths.Fixture("classic", "tfidf_golden.json"))).RootElement;
    private static readonly string[] Docs = Golden.GetProperty("docs").EnumerateArray().Select(d => d.GetString()!).ToArray();
    private static readonly int[] Labels = Golden.GetProperty("labels").EnumerateArray().Select(l => l.GetInt32()).ToArray();

    private static TfidfVectorizer Ngram13Sublinear() =>
        new(new VectorizerOptions { NgramRange = (1, 3) }, new TfidfOptions { SublinearTf = true });

    [Fact]
    public void DefaultVectorizerMatchesVocabularyIdfAndRows()
    {
        var expected = Golden.GetProperty("default");
        var vectorizer = new TfidfVectorizer();
        var matrix = vectorizer.FitTransform(Docs);

        var vocabulary = expected.GetProperty("vocabulary").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        Assert.Equal(vocabulary.Count, vectorizer.Vocabulary.Count);
        foreach (var (term, index) in vocabulary)
            Assert.Equal(index, vectorizer.Vocabulary[term]);

        var idf = expected.GetProperty("idf").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(idf.Length, vectorizer.Idf.Count);
        for (var i = 0; i < idf.Length; i++)
            Assert.True(Math.Abs(idf[i] - vectorizer.Idf[i]) <= 1e-6, $"idf[{i}] {vectorizer.Idf[i]} vs {idf[i]}");

        var rows = expected.GetProperty("rows").EnumerateArray().ToArray();
        for (var r = 0; r < rows.Length; r++)
        {
            var indices = rows[r].GetProperty("indices").EnumerateArray().Select(v => v.GetInt32()).ToArray();
            var data = rows[r].GetProperty("data").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.Equal(indices.Length, matrix.RowIndices(r).Length);
            for (var k = 0; k < indices.Length; k++)
                Assert.True(Math.Abs(data[k] - matrix[r, indices[k]]) <= 1e-6, $"row {r} column {indices[k]}: {matrix[r, indices[k]]} vs {data[k]}");
        }
    }

    [Fact]
    public void Ngram13SublinearMatchesVocabularySizeIdfAndFirstRow()
    {
        var expected = Golden.GetProperty("ngram13_sublinear");
        var vectorizer = Ngram13Sublinear();
        var matrix = vectorizer.FitTransform(Docs);

        Assert.Equal(expected.GetProperty("vocabulary_size").GetInt32(), vectorizer.Vocabulary.Count);
        foreach (var sample in expected.GetProperty("idf_sample").EnumerateObject())
        {
            var column = vectorizer.Vocabulary[sample.Name];
            Assert.True(Math.Abs(sample.Value.GetDouble() - vectorizer.Idf[column]) <= 1e-6, $"idf of '{sample.Name}'");
        }
        var top = expected.GetProperty("first_doc_top20").EnumerateArray().ToArray();
        Assert.Equal(top.Length, matrix.RowIndices(0).Length);
        foreach (var pair in top)
        {
            var term = pair[0].GetString()!;
            Assert.True(Math.Abs(pair[1].GetDouble() - matrix[0, vectorizer.Vocabulary[term]]) <= 1e-6, $"doc 0 '{term}'");
        }
    }

    [Fact]
    public void LogisticRegressionProbabilitiesMatchScikitLearn()
    {
        var features = Ngram13Sublinear().FitTransform(Docs);
        var model = new LogisticRegression(new LogisticRegressionOptions { C = 1.0 }).Fit(features, Labels, classCount: 2);
        var probabilities = model.PredictProba(features);
        var expected = Golden.GetProperty("logreg_C1_lbfgs_on_ngram13").GetProperty("train_proba_first50").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        var worst = expected.Select((p, i) => Math.Abs(p - probabilities[2 * i + 1])).Max();
        Assert.True(worst <= 1e-4, $"max |p - p_sklearn| = {worst}");
    }

    [Fact]
    public void SavedVectorizerTransformsIdentically()
    {
        var vectorizer = Ngram13Sublinear();
        var fitted = vectorizer.FitTransform(Docs);
        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var path = Path.Combine(directory, "tfidf.json");
            vectorizer.Save(path);
            var loaded = TfidfVectorizer.Load(path);
            var again = loaded.Transform(Docs[..20]);
            Assert.Equal(vectorizer.FeatureNames, loaded.FeatureNames);
            for (var r = 0; r < 20; r++)
            {
                Assert.Equal(fitted.RowIndices(r).ToArray(), again.RowIndices(r).ToArray());
                Assert.Equal(fitted.RowValues(r).ToArray(), again.RowValues(r).ToArray());
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
