namespace SharpTune.Tokenizers.Tests;

/// <summary>The ids-only path gives exactly the ids of a full encoding, for every tokenizer family.</summary>
public class IdsOnlyTests
{
    public static TheoryData<string> Tokenizers => new()
    {
        "bert-wordpiece.tokenizer.json", "bytelevel-bpe.tokenizer.json", "sp-unigram.tokenizer.json", "whitespace-bpe.tokenizer.json",
        "real/bert-base-uncased/tokenizer.json", "real/llama2/tokenizer.model",
    };

    private static IEnumerable<string> Texts()
    {
        // Short texts (SST-2 sentences), long ones (WikiText lines) and the golden texts (added tokens, accents, CJK...).
        var sst2 = File.ReadLines(TestPaths.Repo("data", "sst2", "dev.tsv")).Skip(1).Take(300).Select(l => l[(l.IndexOf('\t') + 1)..]);
        var wiki = File.ReadLines(TestPaths.Repo("data", "wikitext2", "wiki.valid.tokens")).Where(l => l.Trim().Length > 0).Take(150);
        var golden = Directory.EnumerateFiles(TestPaths.Fixture("tokenizers"), "*.golden.json")
            .SelectMany(path => GoldenTests.Golden("tokenizers", Path.GetFileName(path)).GetProperty("single").EnumerateArray())
            .Select(c => c.GetProperty("text").GetString()!);
        return sst2.Concat(wiki).Concat(golden).Append("");
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void IdsOnlyEqualsFullEncodingIds(string fixture)
    {
        var tokenizer = AutoTokenizer.FromPretrained(TestPaths.Fixture(["tokenizers", .. fixture.Split('/')]));
        var texts = Texts().ToList();
        var failures = new List<string>();
        foreach (var addSpecialTokens in new[] { true, false })
        {
            var batch = tokenizer.EncodeBatchToIds(texts, addSpecialTokens);
            for (var i = 0; i < texts.Count; i++)
            {
                var expected = tokenizer.Encode(texts[i], addSpecialTokens: addSpecialTokens).Ids;
                GoldenTests.Check(failures, $"ids (special tokens {addSpecialTokens})", texts[i], expected, tokenizer.EncodeToIds(texts[i], addSpecialTokens));
                GoldenTests.Check(failures, $"batch ids (special tokens {addSpecialTokens})", texts[i], expected, batch[i]);
            }
        }
        GoldenTests.Report(failures, texts.Count * 2);
    }
}
