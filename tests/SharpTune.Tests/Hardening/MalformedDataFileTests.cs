using System.Text;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hardening;

/// <summary>Malformed CSV, TSV, JSON Lines and Parquet files given to <c>sharptune classify</c> and <c>predict</c>.</summary>
public sealed class MalformedDataFileTests : MalformedInputSuite
{
    /// <summary>Classify (TF-IDF) trained on <paramref name="name"/> holding <paramref name="content"/>.</summary>
    private static Func<string, string, string[]> Classify(string name, string content) => Classify(name, Encoding.UTF8.GetBytes(content));

    private static Func<string, string, string[]> Classify(string name, byte[] content) => (folder, output) =>
        ["classify", "--train", Write(folder, name, content), "--eval-fraction", "0.3", "--text-column", "text", "--label-column", "label", "--output", output];

    private static Func<string, string, string[]> Predict(string name, string content) => (folder, output) =>
        ["predict", "--model", Path.Combine(RepoPaths.Models, "mini-bert"), "--task", "fill-mask", "--input", Write(folder, name, content),
            "--output", Path.Combine(output, "predictions.jsonl")];

    private static string Rows(int count, Func<int, string>? row = null) =>
        "text,label\n" + string.Concat(Enumerable.Range(0, count).Select(i => (row?.Invoke(i) ?? $"review number {i} reads well,{i % 2}") + "\n"));

    public static readonly MalformedCase[] Cases =
    [
        new("csv-unterminated-quote", Classify("train.csv", Rows(400, i => i == 299 ? "\"an opening quote never closed,1" : $"review number {i} reads well,{i % 2}")),
            "train.csv:301", "never closed"),
        new("csv-field-count", Classify("train.csv", Rows(20, i => i == 4 ? "one,two,three" : $"review {i},{i % 2}")), "train.csv:6", "3 fields, expected 2", "--skip-bad-rows"),
        new("csv-invalid-utf8", Classify("train.csv", [.. Encoding.UTF8.GetBytes("text,label\nfine text,1\nbroken "), 0xFF, 0xFE, .. Encoding.UTF8.GetBytes(" text,0\n")]),
            "train.csv:3", "not valid UTF-8"),
        new("csv-utf16", Classify("train.csv", Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes(Rows(10))).ToArray()), "train.csv:1", "not valid UTF-8"),
        new("csv-empty", Classify("train.csv", ""), "train.csv", "holds no rows"),
        new("csv-stray-label", Classify("train.csv", Rows(40, i => i == 17 ? "a review,abc" : $"review number {i},{i % 2}")),
            "train.csv:19", "label 'abc' is not a number"),
        new("csv-missing-column", Classify("train.csv", "sentence,label\na,1\nb,0\n"), "train.csv", "no text column 'text'"),
        new("unknown-extension", Classify("train.xyz", Rows(10)), "train.xyz", "unknown data file extension '.xyz'"),
        new("jsonl-array-line", Classify("train.jsonl", "{\"text\":\"a\",\"label\":1}\n[1,2]\n{\"text\":\"b\",\"label\":0}\n"),
            "train.jsonl:2", "must be an object"),
        new("jsonl-invalid-json", Classify("train.jsonl", "{\"text\":\"a\",\"label\":1}\n{\"text\": \"b\", \n"), "train.jsonl:2", "invalid JSON"),
        new("jsonl-invalid-utf8", Classify("train.jsonl", [.. Encoding.UTF8.GetBytes("{\"text\":\"a\",\"label\":1}\n{\"text\":\""), 0xC3, 0x28, .. Encoding.UTF8.GetBytes("\",\"label\":0}\n")]),
            "train.jsonl:2", "not valid UTF-8"),
        new("parquet-garbage", Classify("train.parquet", Encoding.ASCII.GetBytes("PAR1 this is not parquet at all PAR1")), "train.parquet", "Parquet"),
        new("parquet-truncated", Classify("train.parquet", [.. Encoding.ASCII.GetBytes("PAR1"), .. new byte[64]]), "train.parquet", "Parquet"),
        new("predict-unterminated-quote", Predict("texts.csv", "text\n\"a [MASK] never closed\nanother [MASK]\n"), "texts.csv:2", "never closed"),
        new("predict-empty-text", Predict("texts.csv", "text,other\na [MASK] day,1\n,2\n"), "texts.csv:3", "empty text", "--skip-bad-rows"),
    ];

    public static TheoryData<string> CaseNames => Names(Cases);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void EndsWithOneClearLine(string name) => Check(Cases.Single(c => c.Name == name));

    [Fact]
    public void PredictSkipsBadRowsWhenAskedAsItsAdviceSays()
    {
        var folder = RepoPaths.NewTempDirectory();
        try
        {
            var input = Write(folder, "texts.csv", "text,other\na [MASK] day,1\n,2\nbad,row,here\nthe [MASK] end,3\n");
            var output = Path.Combine(folder, "out.jsonl");
            var result = CliRunner.Run("predict", "--model", Path.Combine(RepoPaths.Models, "mini-bert"), "--task", "fill-mask", "--input", input,
                "--skip-bad-rows", "--output", output);
            Assert.True(result.ExitCode == 0, result.All);
            Assert.Contains("skipped 2 bad row(s)", result.StdErr);
            Assert.Contains("texts.csv:3", result.StdErr);
            Assert.Contains("texts.csv:4", result.StdErr);
            Assert.Equal(2, File.ReadAllLines(output).Length);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
