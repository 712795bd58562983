using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Training;
using Xunit.Abstractions;

namespace SharpTune.Tokenizers.Tests;

/// <summary>Training on the fixture corpus with the fixture tokenizers' settings, compared with Hugging Face's results.</summary>
public class TrainerTests(ITestOutputHelper output)
{
    private static readonly string Corpus = TestPaths.Fixture("tokenizers", "train_corpus.txt");

    private static JsonNode Fixture(string name) => JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("tokenizers", name + ".tokenizer.json")))!;

    private static HashSet<string> Vocab(JsonNode model) => model["vocab"] is JsonArray pieces
        ? pieces.Select(p => p![0]!.GetValue<string>()).ToHashSet()
        : model["vocab"]!.AsObject().Select(p => p.Key).ToHashSet();

    private static List<string> Merges(JsonNode model) => (model["merges"] as JsonArray ?? [])
        .Select(m => m is JsonArray a ? $"{a[0]} {a[1]}" : m!.GetValue<string>()).ToList();

    private (double Vocab, double Merges) Compare(string name, Tokenizer trained)
    {
        var expected = Fixture(name)["model"]!;
        var actual = trained.ToJson()["model"]!;
        var expectedVocab = Vocab(expected);
        var actualVocab = Vocab(actual);
        var vocabOverlap = (double)expectedVocab.Intersect(actualVocab).Count() / expectedVocab.Count;
        var expectedMerges = Merges(expected);
        var actualMerges = Merges(actual);
        var sameRank = expectedMerges.Zip(actualMerges).Count(p => p.First == p.Second);
        var mergeOverlap = expectedMerges.Count == 0 ? 1 : (double)expectedMerges.Intersect(actualMerges).Count() / expectedMerges.Count;
        output.WriteLine($"{name}: vocab {actualVocab.Count}/{expectedVocab.Count}, {vocabOverlap:P2} of HF vocab identical; " +
                         $"merges {actualMerges.Count}/{expectedMerges.Count}, {mergeOverlap:P2} identical, {sameRank} at the same rank");
        Assert.Equal(expectedVocab.Count, actualVocab.Count);
        return (vocabOverlap, mergeOverlap);
    }

    [Fact]
    public void ByteLevelBpeLearnsHuggingFacesMerges()
    {
        const string FixtureName = "bytelevel-bpe";
        var trained = TokenizerTrainer.TrainFromFiles(TokenizerType.ByteLevelBpe, [Corpus], new TrainerOptions { VocabSize = 2000 });
        var (vocab, _) = Compare(FixtureName, trained);
        // Same algorithm and tie-breaking as Hugging Face: identical vocabulary and merges, in the same order.
        Assert.Equal(1.0, vocab);
        Assert.Equal(Merges(Fixture(FixtureName)["model"]!), Merges(trained.ToJson()["model"]!));
    }

    [Fact]
    public void WhitespaceBpeLearnsHuggingFacesMerges()
    {
        const string FixtureName = "whitespace-bpe";
        var trained = TokenizerTrainer.TrainFromFiles(TokenizerType.Bpe, [Corpus], new TrainerOptions { VocabSize = 1500 });
        var (vocab, _) = Compare(FixtureName, trained);
        // Same algorithm and tie-breaking as Hugging Face: identical vocabulary and merges, in the same order.
        Assert.Equal(1.0, vocab);
        Assert.Equal(Merges(Fixture(FixtureName)["model"]!), Merges(trained.ToJson()["model"]!));
    }

    [Fact]
    public void WordPieceLearnsHuggingFacesVocabulary()
    {
        var trained = TokenizerTrainer.TrainFromFiles(TokenizerType.WordPiece, [Corpus], new TrainerOptions { VocabSize = 2000 });
        // Hugging Face numbers the ##-prefixed characters in hash-map order, which changes its tie-breaking between
        // equally frequent pairs; the rest of the algorithm is the same.
        var (vocab, _) = Compare("bert-wordpiece", trained);
        Assert.True(vocab >= 0.99, $"vocab {vocab:P2}");
    }

    [Fact]
    public void UnigramLearnsHuggingFacesVocabulary()
    {
        var trained = TokenizerTrainer.TrainFromFiles(TokenizerType.Unigram, [Corpus], new TrainerOptions { VocabSize = 2000 });
        var (vocab, _) = Compare("sp-unigram", trained);
        // Same seeds (suffix-tree substrings), EM, pruning and finalization as Hugging Face: the same vocabulary, with the
        // same scores. Ids can differ among pieces of equal score (up to float rounding), and the characters that training
        // dropped get min_score + k·1e-4 with k in Hugging Face's hash-set order: hence the 1e-3 on scores.
        Assert.Equal(1.0, vocab);
        var scores = trained.ToJson()["model"]!["vocab"]!.AsArray().ToDictionary(p => p![0]!.GetValue<string>(), p => p![1]!.GetValue<double>());
        var expected = Fixture("sp-unigram")["model"]!["vocab"]!.AsArray();
        var worst = expected.Max(p => Math.Abs(p![1]!.GetValue<double>() - scores[p[0]!.GetValue<string>()]));
        var sameId = expected.Select((p, i) => trained.TokenToId(p![0]!.GetValue<string>()) == i).Count(same => same);
        output.WriteLine($"largest score difference {worst:G3}; {sameId}/{expected.Count} pieces at Hugging Face's id");
        Assert.True(worst < 1e-3, $"largest score difference {worst}");
        // The saved tokenizer loads back and round-trips text.
        var directory = TestPaths.NewTempDirectory();
        try
        {
            var path = Path.Combine(directory, "tokenizer.json");
            trained.Save(path);
            var loaded = Tokenizer.FromFile(path);
            const string text = "transformers supports zero-shot and few-shot learning";
            Assert.Equal(trained.Encode(text).Ids, loaded.Encode(text).Ids);
            Assert.Equal(text, loaded.Decode(loaded.Encode(text).Ids));
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }
}
