using SharpTune.Tokenizers.Models;

namespace SharpTune.Tokenizers.Tests;

/// <summary>The trie-based WordPiece against the textbook longest-match-first loop (one vocabulary probe per prefix).</summary>
public class WordPieceModelTests
{
    private static List<(int Id, int Start, int End)> Reference(Dictionary<string, int> vocab, string word, string prefix, int maxChars, int unk)
    {
        if (word.EnumerateRunes().Count() > maxChars)
            return [(unk, 0, word.Length)];
        var pieces = new List<(int, int, int)>();
        for (var start = 0; start < word.Length;)
        {
            var id = -1;
            var end = word.Length;
            for (; end > start; end--)
            {
                if (end < word.Length && char.IsHighSurrogate(word[end - 1]) && char.IsLowSurrogate(word[end]))
                    continue; // never cut a code point in two
                if (vocab.TryGetValue((start > 0 ? prefix : "") + word[start..end], out id))
                    break;
            }
            if (end == start)
                return [(unk, 0, word.Length)];
            pieces.Add((id, start, end));
            start = end;
        }
        return pieces;
    }

    private static void AssertMatchesReference(WordPieceModel model, Dictionary<string, int> vocab, IEnumerable<string> words)
    {
        var unk = vocab[model.UnkToken];
        var tokens = new List<Token>();
        foreach (var word in words)
        {
            tokens.Clear();
            model.Tokenize(word, tokens);
            var expected = Reference(vocab, word, model.ContinuingSubwordPrefix, model.MaxInputCharsPerWord, unk);
            Assert.True(expected.SequenceEqual(tokens.Select(t => (t.Id, t.Start, t.End))), $"word '{word}'");
            Assert.All(tokens, t => Assert.Equal(model.IdToToken(t.Id), t.Value));
        }
    }

    [Fact]
    public void SmallVocabularyWithSurrogatesPrefixLookalikesAndLongWords()
    {
        // "##b" is also a word start; "😀" and "a😀" end on a pair; "\ud83d" and "b\ud83d" end inside one ("b😁" must be
        // "b" "##😁", never "b\ud83d" "##\ude01").
        string[] tokens = ["[UNK]", "a", "ab", "abc", "abcab", "b", "##a", "##b", "##bc", "##c", "##ca", "##b", "#", "##", "###",
            "😀", "a😀", "##😀", "\ud83d", "b\ud83d", "##\ude01", "##😁", "é", "##é", "c"];
        var vocab = tokens.Distinct().Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
        var alphabet = new[] { "a", "b", "c", "#", "😀", "😁", "é", "x", "\ud83d" };
        var random = new Random(7);
        var words = Enumerable.Range(0, 4000).Select(_ => string.Concat(Enumerable.Range(0, random.Next(1, 12))
            .Select(_ => alphabet[random.Next(alphabet.Length)]))).ToList();
        words.AddRange(["b😁", "##b", "###", "abcabcab", "a😀😀", new string('a', 9), "😀😀😀😀😀"]);
        foreach (var prefix in new[] { "##", "" })
            AssertMatchesReference(new WordPieceModel(vocab, "[UNK]", prefix, maxInputCharsPerWord: 8), vocab, words);
    }

    [Fact]
    public void BertVocabularyOnItsOwnTokensAndRandomWords()
    {
        var vocab = File.ReadLines(TestPaths.Fixture("tokenizers", "real", "bert-base-uncased", "vocab.txt"))
            .Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
        var model = new WordPieceModel(vocab);
        var random = new Random(11);
        var pieces = vocab.Keys.Where(k => !k.StartsWith('[')).ToArray();
        var words = pieces.Concat(Enumerable.Range(0, 20000).Select(_ => string.Concat(Enumerable.Range(0, random.Next(1, 5))
            .Select(_ => pieces[random.Next(pieces.Length)].TrimStart('#')))));
        AssertMatchesReference(model, vocab, words);
    }
}
