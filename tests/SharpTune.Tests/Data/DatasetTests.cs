using System.Text;
using Parquet;
using Parquet.Schema;
using SharpTune.Data;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Data;

public sealed class DatasetTests : IDisposable
{
    private readonly string _directory = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string name, string content, bool bom = false)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, content, new UTF8Encoding(bom));
        return path;
    }

    [Fact]
    public void CsvWithBomQuotingAndEmbeddedNewlinesKeepsLineNumbers()
    {
        var path = Write("data.csv", "text,label\n\"hello, world\",1\n\"two\nlines \"\"quoted\"\"\",0\nplain,1\n", bom: true);
        var dataset = DatasetLoader.Load(path);
        Assert.Equal(["text", "label"], dataset.ColumnNames);
        Assert.Equal(3, dataset.Count);
        Assert.Equal("hello, world", dataset[0]["text"]);
        Assert.Equal("two\nlines \"quoted\"", dataset[1]["text"]);
        Assert.Equal(new RowOrigin(path, 3), dataset.Origin(1));
        Assert.Equal(new RowOrigin(path, 5), dataset.Origin(2));
    }

    [Fact]
    public void HeaderIsDetectedOrNot()
    {
        var withHeader = DatasetLoader.Load(Write("h.tsv", "label\tcontent\n0\tbad movie\n1\tgood film\n"));
        Assert.Equal(["label", "content"], withHeader.ColumnNames);
        var without = DatasetLoader.Load(Write("n.tsv", "0\tbad movie\n1\tgood film\n"));
        Assert.Equal(["column0", "column1"], without.ColumnNames);
        Assert.Equal(2, without.Count);
        var expected = DatasetLoader.Load(Write("e.csv", "a,b\nx,y\n"), new DatasetLoadOptions { ExpectedColumns = ["a"] });
        Assert.Equal(["a", "b"], expected.ColumnNames);
    }

    [Fact]
    public void TsvQuoteWithoutCloseDoesNotSwallowLines()
    {
        var dataset = DatasetLoader.Load(Write("s.tsv", "label\tsms\nham\t\"SYMPTOMS\" when in love: \"1.U like\nspam\twin a prize\n"));
        Assert.Equal(2, dataset.Count);
        Assert.Equal("spam", dataset[1]["label"]);
    }

    [Fact]
    public void MalformedRowsStopWithFileAndLineUnlessSkipped()
    {
        var path = Write("bad.csv", "text,label\nok,1\ntoo,many,fields\nfine,0\n");
        var error = Assert.Throws<BadRowsException>(() => DatasetLoader.Load(path));
        Assert.Contains($"{path}:3", error.Message);
        var loaded = DatasetLoader.LoadWithReport(path, new DatasetLoadOptions { SkipBadRows = true });
        Assert.Equal(2, loaded.Dataset.Count);
        Assert.Single(loaded.BadRows);
    }

    [Fact]
    public async Task JsonLinesAndParquetLoad()
    {
        var jsonl = DatasetLoader.Load(Write("d.jsonl", "{\"text\": \"a b\", \"label\": 1}\n\n{\"text\": \"c\", \"label\": 0, \"extra\": true}\n"));
        Assert.Equal(["text", "label", "extra"], jsonl.ColumnNames);
        Assert.Equal("1", jsonl[0]["label"]);
        Assert.Null(jsonl[0]["extra"]);
        Assert.Equal(new RowOrigin(Path.Combine(_directory, "d.jsonl"), 3), jsonl.Origin(1));
        var badJson = Write("b.jsonl", "{\"text\": \"a\"}\n{not json\n");
        Assert.Contains(":2", Assert.Throws<BadRowsException>(() => DatasetLoader.Load(badJson)).Message);

        var parquet = Path.Combine(_directory, "d.parquet");
        await WriteParquet(parquet);
        var table = DatasetLoader.Load(parquet);
        Assert.Equal(["text", "label"], table.ColumnNames);
        Assert.Equal(["first", "second", "third"], table.Column("text"));
        Assert.Equal(["0", "1", "1"], table.Column("label"));
    }

    private static async Task WriteParquet(string path)
    {
        var text = new DataField<string>("text");
        var label = new DataField<int>("label");
        await using var stream = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(text, label), stream);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync(text, new[] { "first", "second", "third" });
        await group.WriteAsync<int>(label, new[] { 0, 1, 1 }.AsMemory());
    }

    private static Dataset Labelled(int count, Func<int, string> label) =>
        new(["text", "label"], [Enumerable.Range(0, count).Select(i => (string?)$"text {i}").ToArray(), Enumerable.Range(0, count).Select(i => (string?)label(i)).ToArray()]);

    [Fact]
    public void MapFilterSelectShuffle()
    {
        var dataset = Labelled(10, i => (i % 2).ToString());
        var mapped = dataset.Map(batch => new Dictionary<string, IReadOnlyList<string?>>
        {
            ["length"] = batch.Column("text").Select(t => t!.Length.ToString()).ToArray(),
            ["text"] = batch.Column("text").Select(t => t!.ToUpperInvariant()).ToArray(),
        }, batchSize: 3);
        Assert.Equal(["text", "label", "length"], mapped.ColumnNames);
        Assert.Equal("TEXT 9", mapped[9]["text"]);
        Assert.Equal("6", mapped[0]["length"]);
        Assert.Equal(5, dataset.Filter(r => r["label"] == "1").Count);
        Assert.Equal(["text 3", "text 1"], dataset.Select([3, 1]).Column("text"));
        var shuffled = dataset.Shuffle(7);
        Assert.Equal(dataset.Column("text").Order(), shuffled.Column("text").Order());
        Assert.NotEqual(dataset.Column("text"), shuffled.Column("text"));
        Assert.Equal(shuffled.Column("text"), dataset.Shuffle(7).Column("text"));
    }

    [Fact]
    public void StratifiedSplitAndFoldsKeepClassProportions()
    {
        // 80 of class a, 20 of class b.
        var dataset = Labelled(100, i => i < 80 ? "a" : "b");
        var split = dataset.TrainTestSplit(0.25, seed: 3, stratifyBy: "label");
        Assert.Equal(25, split["test"].Count);
        Assert.Equal(5, split["test"].Column("label").Count(l => l == "b"));
        Assert.Empty(split["train"].Column("text").Intersect(split["test"].Column("text")));

        var folds = dataset.StratifiedKFold(5, "label", seed: 1);
        Assert.Equal(5, folds.Count);
        foreach (var (train, validation) in folds)
        {
            Assert.Equal(20, validation.Length);
            Assert.Equal(4, validation.Count(i => i >= 80));
            Assert.Equal(100, train.Length + validation.Length);
        }
        Assert.Equal(Enumerable.Range(0, 100), folds.SelectMany(f => f.Validation).Order());
    }

    [Fact]
    public void GroupFoldsNeverSplitAGroupAndBalanceSizes()
    {
        var groups = new[] { "g1", "g1", "g1", "g2", "g2", "g3", "g4", "g4", "g5", "g6" };
        var dataset = new Dataset(["group"], [groups.Select(g => (string?)g).ToArray()]);
        var folds = dataset.GroupKFold(3, "group");
        foreach (var (train, validation) in folds)
            Assert.Empty(validation.Select(i => groups[i]).Intersect(train.Select(i => groups[i])));
        Assert.All(folds, f => Assert.InRange(f.Validation.Length, 3, 4));
    }

    [Fact]
    public void TextExtractionReportsBadRowsWithFileAndLine()
    {
        var path = Write("t.csv", "text,label\ngood,pos\n,neg\nno label,\nfine,neutral\n");
        var dataset = DatasetLoader.Load(path);
        var columns = new TextClassificationColumns("text", "label");
        var known = new HashSet<string> { "pos", "neg" };
        var error = Assert.Throws<BadRowsException>(() => TextClassificationData.Extract(dataset, columns, new TextExtractionOptions { KnownLabels = known }));
        Assert.Equal(3, error.Rows.Count);
        Assert.Contains($"{path}:3: empty text", error.Message);
        Assert.Contains($"{path}:4: missing label", error.Message);
        Assert.Contains($"{path}:5: label 'neutral' is not one of the training labels", error.Message);
        var (texts, bad) = TextClassificationData.Extract(dataset, columns, new TextExtractionOptions { KnownLabels = known, SkipBadRows = true });
        Assert.Equal(["good"], texts.Texts);
        Assert.Equal(3, bad.Count);
    }

    [Fact]
    public void SoftLabelsAreThresholdedAndLabelsSortLikeScikitLearn()
    {
        var dataset = new Dataset(["text", "generated"], [["a", "b", "c"], ["0.2", "0.5", "1.0"]]);
        var (texts, _) = TextClassificationData.Extract(dataset, new TextClassificationColumns("text", "generated"), new TextExtractionOptions { LabelThreshold = 0.5 });
        Assert.Equal(new string?[] { "0", "1", "1" }, texts.Labels);
        Assert.Equal(["2", "10"], new LabelEncoder(["10", "2"]).Classes);
        Assert.Equal(["ham", "spam"], new LabelEncoder(["spam", "ham"]).Classes);
    }
}
