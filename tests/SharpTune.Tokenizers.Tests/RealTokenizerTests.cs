namespace SharpTune.Tokenizers.Tests;

/// <summary>
/// Real models' tokenizer.json files give the ids of Hugging Face's own tokenizers (its JS port), in particular around
/// characters outside the Basic Multilingual Plane, which Oniguruma sees as one code point each.
/// </summary>
public class RealTokenizerTests
{
    public static TheoryData<string> Models => new() { "deepseek_v3", "llama3", "qwen3", "gpt4o" };

    private static readonly string[] Astral =
    [
        " this is 🦙.cpp", "🦙🦙 llama🦙2 🦙, 🦙! 3🦙4", "emoji 😀x 😀1 😀. (😀) 😀😀😀 a😀b",
        "𠀀 CJK Ext B 𠀀𠀁𠀂 next to letters a𠀀b, digits 1𠀀2, punctuation 𠀀.,𠀀!", "中文𠀀字 𪚥𪚥 龍𪚥",
        "𝐀𝐁𝐂 math bold 𝑥+𝑦=𝑧, 𝟏𝟐𝟑 digits, x𝐀1 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝒜𝓁𝓅𝒽𝒶 and 𝕏𝕐 then 𝟘𝟙𝟚3",
        "family 👨‍👩‍👧‍👦 next a👨‍👩‍👧b 1👩‍💻2 👩‍💻. 🏳️‍🌈! 🧑🏽‍🚀x", "flags 🇫🇷🇩🇪 keycap 1️⃣ #️⃣ skin 👋🏽a",
        "mixed: Hello🌍World 42🌍 🌍42 'quote🌍' \"🌍\" —🌍— 🌍\n🌍\t🌍  🌍", "𐍈𐌰𐌻 Gothic 𓀀 hieroglyph 𞤀 Adlam 𑀓 Brahmi",
        "  leading spaces 🦙", "trailing 🦙   ", "🦙\n\n🦙\r\n𠀀", "x\u200Dy a\u200D1 \u200D.", "ZWJ only \u200D\u200D 🦙\u200D🦙",
        "Ünïcödé café naïve 日本語 Ελληνικά русский عربى हिन्दी", "I'm sure they'll've done it, won't they? 123456789 3.14",
    ];

    private static IEnumerable<string> Texts()
    {
        var golden = Directory.EnumerateFiles(TestPaths.Fixture("tokenizers"), "*.golden.json")
            .SelectMany(path => GoldenTests.Golden("tokenizers", Path.GetFileName(path)).GetProperty("single").EnumerateArray())
            .Select(c => c.GetProperty("text").GetString()!);
        var sst2 = File.ReadLines(TestPaths.Repo("data", "sst2", "dev.tsv")).Skip(1).Take(100).Select(l => l[(l.IndexOf('\t') + 1)..]);
        return Astral.Concat(golden).Concat(sst2).Distinct();
    }

    private static readonly Dictionary<string, Tokenizer> Cache = [];

    internal static Tokenizer Load(string model)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(model, out var tokenizer))
                Cache[model] = tokenizer = Tokenizer.FromFile(HfTokenizersJs.RealTokenizer(model));
            return tokenizer;
        }
    }

    [RequiresNodeTheory]
    [MemberData(nameof(Models))]
    public void IdsEqualHuggingFaceJs(string model)
    {
        var texts = Texts().ToList();
        var expected = HfTokenizersJs.Encode(HfTokenizersJs.RealTokenizer(model), texts);
        var tokenizer = Load(model);
        var failures = new List<string>();
        var options = new EncodeOptions { AddSpecialTokens = false };
        for (var i = 0; i < texts.Count; i++)
        {
            var encoding = tokenizer.Encode(texts[i], null, options);
            GoldenTests.Check(failures, model, texts[i], expected[i], encoding.Ids);
            GoldenTests.Check(failures, model + " ids-only", texts[i], expected[i], tokenizer.EncodeToIds(texts[i], null, options));
        }
        // Its parts written as a tokenizer.json by SharpTune and read back tokenize the same (regexes, byte-level, templates).
        var rebuilt = Tokenizer.FromJson(new Tokenizer(tokenizer.Model, tokenizer.Normalizer, tokenizer.PreTokenizer, tokenizer.PostProcessor,
            tokenizer.Decoder, tokenizer.AddedTokens, tokenizer.SpecialTokens).ToJson().ToJsonString(), "rebuilt " + model);
        for (var i = 0; i < Astral.Length; i++)
            GoldenTests.Check(failures, model + " rebuilt from parts", texts[i], expected[i], rebuilt.EncodeToIds(texts[i], null, options));
        GoldenTests.Report(failures, texts.Count);
    }
}
