using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers.Tests;

/// <summary>Tokenizer regexes run as Oniguruma runs them: on code points, and bounded.</summary>
public class PatternTests
{
    private static string[] Split(string pattern, string text) =>
        TokenizerPattern.FromRegex(pattern).Matches(text).Select(m => text[m.Start..m.End]).ToArray();

    [Fact]
    public void UnicodeClassesSeeAstralCharactersAsOneCodePoint()
    {
        // DeepSeek-V3's patterns: 🦙 (U+1F999) is a symbol, 𠀀 (U+20000) a letter, 𝐀 (U+1D400) a letter.
        Assert.Equal([" 🦙."], Split(@" ?[\p{P}\p{S}]+[\r\n]*", " 🦙.cpp"));
        Assert.Equal(["a𠀀b", " 𝐀𝐁"], Split(@"[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+", "a𠀀b 1 𝐀𝐁"));
        Assert.Equal(["🦙", "x", "😀"], Split(@".", "🦙x😀"));
        Assert.Equal(["🦙🦙"], Split(@"^\S{2}$", "🦙🦙"));
        Assert.Equal(["𠀀"], Split(@"(?<=a)\w", "a𠀀"));
    }

    [Theory]
    [InlineData(Llama3Split.Llama3Pattern)]
    [InlineData(Llama3Split.Qwen2Pattern)]
    public void HandWrittenLlama3AndQwenSplitsEqualOniguruma(string pattern)
    {
        var matcher = Llama3Split.For(pattern)!;
        var regex = TokenizerPattern.FromRegex(pattern);
        // Random ASCII over the chars that matter (letters, digits, apostrophes and contractions, spaces, tabs, line
        // breaks, other punctuation and control chars), plus real text.
        const string alphabet = "aZs'tTreRElLvVmMdD09 5 \t\n\r\v\f.,!?-_\u0001\u001f\u007f\"#";
        var random = new Random(17);
        var texts = Enumerable.Range(0, 3000).Select(_ => new string(Enumerable.Range(0, random.Next(0, 24))
            .Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray())).ToList();
        texts.AddRange(File.ReadLines(TestPaths.Repo("data", "wikitext2", "wiki.valid.tokens")).Take(300));
        texts.Add("I'm sure they'll've DONE it, won't they?  12345 3.14159\r\n\n  \t x");
        foreach (var text in texts.Where(t => System.Text.Ascii.IsValid(t)))
        {
            var ours = new List<(int, int)>();
            matcher.Matches(text, 0, text.Length, ours);
            Assert.True(regex.Matches(text).SequenceEqual(ours), $"{System.Text.Json.JsonSerializer.Serialize(text)}: " +
                $"Oniguruma {string.Join(" ", regex.Matches(text))} vs hand-written {string.Join(" ", ours)}");
        }
    }

    [Fact]
    public void LoneSurrogatesNeverJoinTheirNeighbours()
    {
        var text = "a\uD83Eb\uDD99c";
        Assert.Equal(["a", "b", "c"], Split(@"\p{L}", text));
    }

    [Fact]
    public void CatastrophicBacktrackingEndsWithAClearError()
    {
        var pattern = TokenizerPattern.FromRegex("(a+)+$");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.Throws<RegexLimitException>(() => pattern.Matches(new string('a', 34) + "!"));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
        Assert.Contains("(a+)+$", error.Message);
        Assert.Equal([(0, 3)], pattern.Matches("aaa")); // the same pattern on a benign text
    }

    [Fact]
    public void InvalidRegexIsRefusedWithTheReason()
    {
        var error = Assert.Throws<ArgumentException>(() => TokenizerPattern.FromRegex("(unclosed"));
        Assert.Contains("(unclosed", error.Message);
    }
}
