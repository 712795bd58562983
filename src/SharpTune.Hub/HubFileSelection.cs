using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>Which files of a repository a download fetches.</summary>
public sealed class HubFileSelection
{
    private static readonly string[] ConfigAndTokenizer =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "chat_template.jinja", "chat_template.json",
    ];

    private static readonly string[] Adapter = ["adapter_config.json", "adapter_model.safetensors"];

    private readonly Func<string, bool> _match;

    private HubFileSelection(string description, Func<string, bool> match, bool followIndex)
    {
        Description = description;
        _match = match;
        FollowsWeightIndex = followIndex;
    }

    public string Description { get; }

    /// <summary>Whether the safetensors shards a <c>model.safetensors.index.json</c> lists are fetched with it.</summary>
    public bool FollowsWeightIndex { get; }

    /// <summary>What loading a model needs: config, tokenizer and generation files, chat template, the safetensors weights
    /// (the sharded set when the repository has an index, else model.safetensors) and a PEFT adapter's files.</summary>
    public static HubFileSelection Model { get; } = new("model files", f =>
        ConfigAndTokenizer.Contains(f) || Adapter.Contains(f) || f is "model.safetensors" or "model.safetensors.index.json", followIndex: true);

    /// <summary>Tokenizer files and config.json (some tokenizers read the model type from it).</summary>
    public static HubFileSelection Tokenizer { get; } = new("tokenizer files", ConfigAndTokenizer.Contains, followIndex: false);

    /// <summary>Every file of the repository.</summary>
    public static HubFileSelection All { get; } = new("all files", _ => true, followIndex: false);

    /// <summary>Files matching any of the glob patterns (fnmatch, as huggingface_hub's allow_patterns: <c>*</c> also
    /// crosses <c>/</c>; a pattern ending in <c>/</c> means everything under that folder).</summary>
    public static HubFileSelection Patterns(IReadOnlyList<string> patterns)
    {
        var regexes = patterns.Select(p => new Regex("^" + GlobToRegex(p.EndsWith('/') ? p + "*" : p) + "$", RegexOptions.CultureInvariant)).ToList();
        return new HubFileSelection(string.Join(", ", patterns), f => regexes.Any(r => r.IsMatch(f)), followIndex: false);
    }

    internal IReadOnlyList<string> Select(IEnumerable<string> files)
    {
        var selected = files.Where(_match).Order(StringComparer.Ordinal).ToList();
        // A repository with an index is loaded from its shards: a consolidated model.safetensors beside them is not needed.
        if (FollowsWeightIndex && selected.Contains("model.safetensors.index.json"))
            selected.Remove("model.safetensors");
        return selected;
    }

    /// <summary>The shard files a safetensors index names (its <c>weight_map</c> values).</summary>
    internal static IReadOnlyList<string> Shards(string indexFile)
    {
        var map = JsonNode.Parse(File.ReadAllText(indexFile))?["weight_map"] as JsonObject
                  ?? throw new InvalidDataException($"{indexFile}: no weight_map object");
        return map.Select(p => p.Value?.GetValue<string>() ?? throw new InvalidDataException($"{indexFile}: weight_map[{p.Key}] is not a file name"))
            .Distinct().Order(StringComparer.Ordinal).ToList();
    }

    private static string GlobToRegex(string glob)
    {
        var text = new System.Text.StringBuilder();
        for (var i = 0; i < glob.Length; i++)
        {
            var c = glob[i];
            if (c == '*')
                text.Append(".*");
            else if (c == '?')
                text.Append('.');
            else if (c == '[' && glob.IndexOf(']', i + 1) is var end and > 0)
            {
                var set = glob[(i + 1)..end];
                text.Append('[').Append(set.StartsWith('!') ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                i = end;
            }
            else
                text.Append(Regex.Escape(c.ToString()));
        }
        return text.ToString();
    }
}
