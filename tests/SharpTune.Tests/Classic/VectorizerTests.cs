using SharpTune.Classic;

namespace SharpTune.Tests.Classic;

/// <summary>scikit-learn's analyzer and pruning semantics on small cases whose results follow from its definitions.</summary>
public sealed class VectorizerTests
{
    private static List<string> Features(VectorizerOptions options, string document) => new TextAnalyzer(options).Analyze(document);

    [Fact]
    public void DefaultTokenPatternKeepsRunsOfTwoOrMoreWordCharacters()
    {
        Assert.Equal(["don", "foo_bar", "2024", "größe", "ok"], Features(new VectorizerOptions(), "Don't a foo_bar 2024 Größe! ok x"));
        // Python's \w has no combining marks: "e\u0301t\u00e9" splits at the mark.
        Assert.Equal(["t\u00e9"], Features(new VectorizerOptions(), "e\u0301t\u00e9"));
        Assert.Equal(["Hello", "World"], Features(new VectorizerOptions { Lowercase = false }, "Hello World"));
    }

    [Fact]
    public void WordNgramsCharNgramsAndCharWordBounded()
    {
        Assert.Equal(["the", "cat", "sat", "the cat", "cat sat", "the cat sat"], Features(new VectorizerOptions { NgramRange = (1, 3) }, "The cat sat"));
        Assert.Equal(["a", "b", " ", "c", "ab", "b ", " c"], Features(new VectorizerOptions { Analyzer = TextAnalyzerKind.Char, NgramRange = (1, 2) }, "ab  c"));
        Assert.Equal([" a", "ab", "b ", " ab", "ab ", " c", "c ", " c "],
            Features(new VectorizerOptions { Analyzer = TextAnalyzerKind.CharWordBounded, NgramRange = (2, 3) }, "ab c"));
        // A word shorter than n yields itself once.
        Assert.Equal([" x "], Features(new VectorizerOptions { Analyzer = TextAnalyzerKind.CharWordBounded, NgramRange = (5, 6) }, "x"));
    }

    [Fact]
    public void AccentsStopWordsCustomPatternAndTokenizer()
    {
        Assert.Equal(["cafe", "naive"], Features(new VectorizerOptions { StripAccents = StripAccents.Unicode }, "Café naïve"));
        Assert.Equal(["cafe", "fine"], Features(new VectorizerOptions { StripAccents = StripAccents.Ascii }, "café \uFB01ne"));
        Assert.Equal(["quick", "fox"], Features(new VectorizerOptions { StopWords = ["the", "brown"] }, "the quick brown fox"));
        Assert.Equal(["a", "b"], Features(new VectorizerOptions { TokenPattern = @"#(\w+)" }, "#a and #b"));
        Assert.Equal(["x-y", "z"], Features(new VectorizerOptions { Tokenizer = text => text.Split(' ') }, "X-Y Z"));
    }

    [Fact]
    public void DocumentFrequencyBoundsAndMaxFeatures()
    {
        string[] docs = ["apple banana", "apple cherry", "apple banana date", "elder"];
        Assert.Equal(["banana"], new CountVectorizer(new VectorizerOptions { MinDf = 2, MaxDf = 0.5 }).Fit(docs).FeatureNames);
        Assert.Equal(["banana", "cherry", "date", "elder"], new CountVectorizer(new VectorizerOptions { MaxDf = 2 }).Fit(docs).FeatureNames);
        // Most frequent first, ties alphabetical: apple (3), banana (2), then cherry over date and elder.
        Assert.Equal(["apple", "banana", "cherry"], new CountVectorizer(new VectorizerOptions { MaxFeatures = 3 }).Fit(docs).FeatureNames);
        Assert.Throws<ArgumentException>(() => new CountVectorizer(new VectorizerOptions { MinDf = 5 }).Fit(docs));

        Assert.Throws<ArgumentException>(() => new CountVectorizer().Fit(["a b", "c"]));
        var onlyLong = new CountVectorizer().FitTransform(["bb aa bb", "cc"]);
        Assert.Equal(new double[,] { { 1, 2, 0 }, { 0, 0, 1 } }, onlyLong.ToDense());
        Assert.Equal(new double[,] { { 1, 1, 0 }, { 0, 0, 1 } }, new CountVectorizer(new VectorizerOptions { Binary = true }).FitTransform(["bb aa bb", "cc"]).ToDense());
    }

    [Fact]
    public void TfidfWeightingOptions()
    {
        string[] docs = ["aa bb bb", "aa cc"];
        // n = 2; df(aa) = 2, df(bb) = df(cc) = 1.
        var raw = new TfidfVectorizer(tfidf: new TfidfOptions { Norm = TfidfNorm.None, SmoothIdf = false }).FitTransform(docs);
        var idfRare = Math.Log(2.0 / 1) + 1;
        Assert.Equal(1.0, raw[0, 0], 12);
        Assert.Equal(2 * idfRare, raw[0, 1], 12);
        var smooth = new TfidfVectorizer(tfidf: new TfidfOptions { Norm = TfidfNorm.None });
        smooth.Fit(docs);
        Assert.Equal(Math.Log(3.0 / 2) + 1, smooth.Idf[1], 12);
        var l1 = new TfidfVectorizer(tfidf: new TfidfOptions { Norm = TfidfNorm.L1, UseIdf = false, SublinearTf = true }).FitTransform(docs);
        var bb = 1 + Math.Log(2);
        Assert.Equal(bb / (1 + bb), l1[0, 1], 12);
        var l2 = new TfidfVectorizer().FitTransform(docs);
        Assert.Equal(1.0, Enumerable.Range(0, 3).Sum(j => l2[1, j] * l2[1, j]), 12);
        // Terms unseen in training are ignored at transform time.
        Assert.Equal(0, new TfidfVectorizer().Fit(docs) is TfidfVectorizer v ? v.Transform(["zz yy"]).NonZeros : -1);
    }

    [Fact]
    public void CodePointOrderMatchesPythonSorting()
    {
        // U+FB01 (BMP, above the surrogates) sorts before U+1F600 in Python, though its UTF-16 unit is larger.
        var emoji = char.ConvertFromUtf32(0x1F600);
        Assert.True(CodePointComparer.Instance.Compare("\uFB01", emoji) < 0);
        Assert.True(string.CompareOrdinal("\uFB01", emoji) > 0);
    }
}
