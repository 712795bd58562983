using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers;

/// <summary>
/// A model folder's tokenizer settings outside tokenizer.json: tokenizer_config.json (with special_tokens_map.json
/// for the special tokens) and the chat templates (<c>chat_template</c> as a string or a list of {name, template},
/// <c>chat_template.jinja</c>, <c>additional_chat_templates/*.jinja</c>, legacy chat_template.json). The one reader
/// of these files in SharpTune; every file may be absent.
/// </summary>
public sealed class TokenizerConfig
{
    /// <summary>The name transformers gives the unnamed template.</summary>
    public const string DefaultTemplateName = "default";

    private TokenizerConfig(string directory) => Directory = directory;

    public string Directory { get; }

    /// <summary>tokenizer_config.json as read (null when the file is absent).</summary>
    public JsonObject? Json { get; private init; }

    /// <summary>Special tokens named by tokenizer_config.json and special_tokens_map.json (the latter wins); null if none.</summary>
    public SpecialTokens? SpecialTokens { get; private init; }

    /// <summary><c>additional_special_tokens</c>, as templates see them.</summary>
    public IReadOnlyList<string> AdditionalSpecialTokens { get; private init; } = [];

    /// <summary><c>add_bos_token</c> (transformers' Llama tokenizers prepend BOS even when tokenizer.json's post-processor does not).</summary>
    public bool AddBosToken { get; private init; }

    /// <summary><c>add_eos_token</c>.</summary>
    public bool AddEosToken { get; private init; }

    /// <summary><c>do_lower_case</c> (BERT vocab.txt tokenizers); null when not given.</summary>
    public bool? DoLowerCase { get; private init; }

    /// <summary><c>model_max_length</c> when it is a real limit (transformers writes 1e30 for "none").</summary>
    public int? ModelMaxLength { get; private init; }

    /// <summary>Chat templates by name; the unnamed one is <see cref="DefaultTemplateName"/>.</summary>
    public IReadOnlyDictionary<string, string> ChatTemplates { get; private init; } = new Dictionary<string, string>();

    public static TokenizerConfig Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var configPath = Path.Combine(directory, "tokenizer_config.json");
        var config = ReadObject(configPath);
        var special = new Dictionary<string, string>();
        var additional = new List<string>();
        foreach (var root in new[] { config, ReadObject(Path.Combine(directory, "special_tokens_map.json")) })
        {
            if (root is null)
                continue;
            foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "pad_token", "cls_token", "sep_token", "mask_token" })
                if (TokenContent(root[key]) is { } token)
                    special[key] = token;
            if (root["additional_special_tokens"] is JsonArray extra)
            {
                additional.Clear();
                additional.AddRange(extra.Select(TokenContent).OfType<string>());
            }
        }
        var templates = new Dictionary<string, string>(StringComparer.Ordinal);
        switch (config?["chat_template"])
        {
            case JsonValue value when value.TryGetValue<string>(out var template):
                templates[DefaultTemplateName] = template;
                break;
            case JsonArray list:
                foreach (var entry in list)
                    if (entry is JsonObject o && o["name"]?.GetValue<string>() is { } name && o["template"]?.GetValue<string>() is { } body)
                        templates[name] = body;
                    else
                        throw new InvalidDataException($"{configPath}: chat_template list entries must be {{\"name\": ..., \"template\": ...}}");
                break;
            case null:
                break;
            default:
                throw new InvalidDataException($"{configPath}: chat_template must be a string or a list of {{name, template}}");
        }
        // Newer transformers save templates as files, which take precedence over tokenizer_config.json.
        var legacy = ReadObject(Path.Combine(directory, "chat_template.json"));
        if (legacy?["chat_template"] is JsonValue legacyValue && legacyValue.TryGetValue<string>(out var legacyTemplate))
            templates[DefaultTemplateName] = legacyTemplate;
        var jinja = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(jinja))
            templates[DefaultTemplateName] = File.ReadAllText(jinja);
        var additionalDirectory = Path.Combine(directory, "additional_chat_templates");
        if (System.IO.Directory.Exists(additionalDirectory))
            foreach (var file in System.IO.Directory.EnumerateFiles(additionalDirectory, "*.jinja").Order(StringComparer.Ordinal))
                templates[Path.GetFileNameWithoutExtension(file)] = File.ReadAllText(file);

        var maxLength = config?["model_max_length"] is JsonValue m && m.TryGetValue<double>(out var max) && max is > 0 and < int.MaxValue ? (int?)max : null;
        return new TokenizerConfig(directory)
        {
            Json = config,
            SpecialTokens = special.Count == 0 ? null : new SpecialTokens
            {
                Bos = special.GetValueOrDefault("bos_token"),
                Eos = special.GetValueOrDefault("eos_token"),
                Unk = special.GetValueOrDefault("unk_token"),
                Pad = special.GetValueOrDefault("pad_token"),
                Cls = special.GetValueOrDefault("cls_token"),
                Sep = special.GetValueOrDefault("sep_token"),
                Mask = special.GetValueOrDefault("mask_token"),
            },
            AdditionalSpecialTokens = additional,
            AddBosToken = Bool(config, "add_bos_token", configPath) ?? false,
            AddEosToken = Bool(config, "add_eos_token", configPath) ?? false,
            DoLowerCase = Bool(config, "do_lower_case", configPath),
            ModelMaxLength = maxLength,
            ChatTemplates = templates,
        };
    }

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path} is not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid JSON ({e.Message})", e);
        }
    }

    private static string? TokenContent(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var content) => content,
        _ => null,
    };

    private static bool? Bool(JsonObject? config, string key, string path) => config?[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        var other => throw new InvalidDataException($"{path}: {key} must be true or false, not {other.ToJsonString()}"),
    };
}
