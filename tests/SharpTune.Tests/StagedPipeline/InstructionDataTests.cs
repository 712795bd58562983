using SharpTune.Training;
using SharpTune.StagedPipeline;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.StagedPipeline;

public class InstructionDataTests
{
    /// <summary>A character-level tokenizer: enough to check label masking and truncation exactly.</summary>
    internal sealed class CharTokenizer : IInstructionTokenizer
    {
        public const int Bos = 1;
        public int EosTokenId => 2;
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens) =>
            (addSpecialTokens ? new[] { Bos } : []).Concat(text.Select(c => (int)c + 3)).ToList();
        public string Decode(IEnumerable<int> ids) => new(ids.Where(i => i > 2).Select(i => (char)(i - 3)).ToArray());
    }

    [Fact]
    public void DollySubsetLoadsWithPlaceholderRemoved()
    {
        var records = InstructionDataset.Load(Path.Combine(RepoPaths.Data, "dolly_subset", "dolly_alpaca_format.jsonl"));
        Assert.Equal(151, records.Count);
        Assert.All(records, r => Assert.DoesNotContain(InstructionDataset.EosPlaceholder, r.Response));
        Assert.All(records, r => Assert.EndsWith("### Response:", r.Prompt));
        Assert.Equal("November, December, January, February", records[3].Response);
        Assert.Equal(4, records[3].Line);
    }

    [Fact]
    public void DollyStyleRecordsRenderTheAlpacaPromptOfTheSubset()
    {
        var dir = RepoPaths.NewTempDirectory();
        var path = Path.Combine(dir, "dolly.jsonl");
        File.WriteAllLines(path,
        [
            """{"instruction": "Name a color.", "context": "", "response": "Blue."}""",
            "",
            """{"instruction": "Summarize.", "context": "A long text.", "response": "Short."}""",
        ]);
        var records = InstructionDataset.Load(path);
        Assert.Equal(2, records.Count);
        Assert.Equal("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a color.\n\n### Response:", records[0].Prompt);
        Assert.Contains("### Input:\nA long text.\n\n### Response:", records[1].Prompt);
        Assert.Equal(3, records[1].Line);
        // The subset's own with-context records use the same template text.
        var subset = InstructionDataset.Load(Path.Combine(RepoPaths.Data, "dolly_subset", "dolly_alpaca_format.jsonl"));
        var withInput = subset.First(r => r.Prompt.Contains("### Input:"));
        Assert.StartsWith(records[1].Prompt[..records[1].Prompt.IndexOf("### Instruction:", StringComparison.Ordinal)], withInput.Prompt);
    }

    [Theory]
    [InlineData("""{"prompt": "Q"}""", "lacks a non-empty 'answer'")]
    [InlineData("""{"instruction": "Do it", "context": "x"}""", "lacks a non-empty 'response'")]
    [InlineData("""{"text": "hello"}""", "unknown record shape (fields: text)")]
    [InlineData("""{"prompt": 3, "answer": "a"}""", "field 'prompt' must be a string")]
    [InlineData("{\"prompt\": \"Q\", \"answer\": \"A\"", "not valid JSON")]
    public void BadRecordsNameFileAndLine(string badLine, string message)
    {
        var path = Path.Combine(RepoPaths.NewTempDirectory(), "bad.jsonl");
        File.WriteAllLines(path, ["""{"prompt": "ok", "answer": "fine"}""", badLine]);
        var error = Assert.Throws<InvalidDataException>(() => InstructionDataset.Load(path));
        Assert.Contains($"{path}:2:", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void LabelsMaskThePromptAndEndWithEos()
    {
        var tokenizer = new CharTokenizer();
        var example = InstructionExample.From(tokenizer, new InstructionRecord("Hi:", "yo", 1), maxLength: 64);
        Assert.Equal(new long[] { 1, 'H' + 3, 'i' + 3, ':' + 3, 'y' + 3, 'o' + 3, 2 }, example.InputIds);
        Assert.Equal(new long[] { -100, -100, -100, -100, 'y' + 3, 'o' + 3, 2 }, example.Labels);
        Assert.Equal(4, example.PromptLength);
        Assert.Equal(3, example.ResponseTokenCount);
    }

    [Fact]
    public void TruncationKeepsResponseTokensAndThePromptsEnd()
    {
        var tokenizer = new CharTokenizer();
        long C(char c) => c + 3;
        // Short prompt: only the response's end is cut.
        var cutResponse = InstructionExample.From(tokenizer, new InstructionRecord("ab", "defghijk", 1), maxLength: 8);
        Assert.Equal(new[] { 1, C('a'), C('b'), C('d'), C('e'), C('f'), C('g'), C('h') }, cutResponse.InputIds);
        Assert.Equal(5, cutResponse.ResponseTokenCount);
        // Long prompt: the response keeps half the budget, the prompt keeps BOS and its end.
        var longPrompt = InstructionExample.From(tokenizer, new InstructionRecord("0123456789", "xyz", 1), maxLength: 8);
        Assert.Equal(new[] { 1, C('7'), C('8'), C('9'), C('x'), C('y'), C('z'), 2 }, longPrompt.InputIds);
        Assert.Equal(new[] { -100, -100, -100, -100, C('x'), C('y'), C('z'), 2 }, longPrompt.Labels);
        // Both long: half each.
        var both = InstructionExample.From(tokenizer, new InstructionRecord("0123456789", "uvwxyz", 1), maxLength: 8);
        Assert.Equal(new[] { 1, C('7'), C('8'), C('9'), C('u'), C('v'), C('w'), C('x') }, both.InputIds);
        Assert.Equal(8, both.InputIds.Length);
    }

    [Fact]
    public void SplitIsSeededDisjointAndSized()
    {
        var records = Enumerable.Range(1, 30).Select(i => new InstructionRecord($"p{i}", $"r{i}", i)).ToList();
        var (train, heldOut) = InstructionDataset.Split(records, trainCount: 100, heldOutCount: 5, seed: 7);
        Assert.Equal(5, heldOut.Count);
        Assert.Equal(25, train.Count);
        Assert.Empty(train.Intersect(heldOut));
        var again = InstructionDataset.Split(records, 100, 5, 7);
        Assert.Equal(heldOut, again.HeldOut);
        Assert.NotEqual(heldOut, InstructionDataset.Split(records, 100, 5, 8).HeldOut);
        Assert.Throws<ArgumentException>(() => InstructionDataset.Split(records, 10, 30, 7));
    }
}
