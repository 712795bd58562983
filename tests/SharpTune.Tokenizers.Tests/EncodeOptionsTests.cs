namespace SharpTune.Tokenizers.Tests;

/// <summary>Per-call options: one tokenizer serves callers with different settings at once; every path agrees.</summary>
public class EncodeOptionsTests
{
    private static readonly string[] Texts =
    [
        "Hello world, this is a rather long sentence that needs truncating at some point.",
        "short", "", "A second sentence; with punctuation!", "Ünïcödé and 日本語 text, then more words to overflow the window",
    ];

    private static EncodeOptions[] Settings(Tokenizer tokenizer) =>
    [
        EncodeOptions.Default,
        EncodeOptions.Truncated(6),
        new() { Truncation = new TruncationOptions(7) { Stride = 2, Direction = Direction.Left }, Padding = tokenizer.PaddingTo(9) },
        new() { Padding = tokenizer.PaddingTo() with { PadToMultipleOf = 8, Direction = Direction.Left }, AddSpecialTokens = false },
        new() { Truncation = new TruncationOptions(5) { Strategy = TruncationStrategy.OnlyFirst }, Padding = tokenizer.PaddingTo(12) },
        new() { Truncation = new TruncationOptions(0) },
    ];

    private static string Describe(TokenEncoding e) =>
        string.Join(",", e.Ids) + "|" + string.Join(",", e.AttentionMask) + "|" + string.Join(",", e.TypeIds) + "|"
        + string.Join(";", e.Overflowing.Select(o => string.Join(",", o.Ids)));

    public static TheoryData<string> Fixtures => new() { "bert-wordpiece", "bytelevel-bpe", "sp-unigram" };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void ConcurrentCallsWithDifferentSettingsEqualSequentialCalls(string name)
    {
        var tokenizer = Tokenizer.FromFile(TestPaths.Fixture("tokenizers", name + ".tokenizer.json"));
        var settings = Settings(tokenizer);
        var jobs = (from s in Enumerable.Range(0, settings.Length) from t in Texts from p in new[] { null, "and a pair text" }
                    select (Setting: s, Text: t, Pair: p)).ToArray();
        string Run((int Setting, string Text, string? Pair) job)
        {
            var options = settings[job.Setting];
            TokenEncoding encoding;
            try
            {
                encoding = tokenizer.Encode(job.Text, job.Pair, options);
            }
            catch (ArgumentException e) // settings impossible for this input (as in Hugging Face): the same error on every path
            {
                Assert.Equal(e.Message, Assert.Throws<ArgumentException>(() => tokenizer.EncodeToIds(job.Text, job.Pair, options)).Message);
                return e.Message;
            }
            var ids = tokenizer.EncodeToIds(job.Text, job.Pair, options);
            Assert.Equal(encoding.Ids, ids);
            Assert.Equal(ids.Length, tokenizer.CountTokens(job.Text, job.Pair, options));
            var copy = tokenizer.WithOptions(options);
            Assert.Equal(encoding.Ids, copy.Encode(job.Text, job.Pair, options.AddSpecialTokens).Ids);
            return Describe(encoding);
        }
        var sequential = jobs.Select(Run).ToArray();
        var concurrent = new string[jobs.Length];
        // Many rounds over the jobs in a scrambled order on several threads at once.
        var order = Enumerable.Range(0, jobs.Length * 8).Select(i => i % jobs.Length).OrderBy(i => (i * 7919) % 31).ToArray();
        Parallel.ForEach(order, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => concurrent[i] = Run(jobs[i]));
        Assert.Equal(sequential, concurrent);
        Assert.Null(tokenizer.Truncation); // settings of one call never stick to the tokenizer
        Assert.Null(tokenizer.Padding);
    }

    [Fact]
    public void BatchIdsPadToTheLongestLikeFullEncodings()
    {
        var tokenizer = Tokenizer.FromFile(TestPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"));
        foreach (var options in Settings(tokenizer))
        {
            var full = tokenizer.EncodeBatch(Texts, options).Select(e => e.Ids.ToArray()).ToArray();
            var ids = tokenizer.EncodeBatchToIds(Texts, options);
            Assert.Equal(full, ids);
            Assert.Equal(full[0], tokenizer.EncodeToIds(Texts[0].AsSpan(), options with { Padding = options.Padding is { Length: null } ? null : options.Padding }));
        }
    }

    [Fact]
    public void WithTruncationMakesACopyAndLeavesTheOriginal()
    {
        var tokenizer = Tokenizer.FromFile(TestPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"));
        var truncated = tokenizer.WithTruncation(new TruncationOptions(4));
        Assert.Equal(4, truncated.Encode(Texts[0]).Length);
        Assert.True(tokenizer.Encode(Texts[0]).Length > 4);
        Assert.Equal(4, truncated.ToJson()["truncation"]!["max_length"]!.GetValue<int>());
        Assert.Null(tokenizer.ToJson()["truncation"]);
    }
}
