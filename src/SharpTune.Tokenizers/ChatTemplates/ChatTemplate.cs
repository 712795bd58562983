using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.ChatTemplates;

/// <summary>One chat message. Extra fields templates read (tool calls, the tool call id, a name, reasoning) are optional.</summary>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>OpenAI-style tool calls: [{"type": "function", "function": {"name": ..., "arguments": {...}}}].</summary>
    public JsonArray? ToolCalls { get; init; }
    public string? ToolCallId { get; init; }
    public string? Name { get; init; }

    /// <summary>The model's reasoning, for templates that render it (Qwen3's <c>reasoning_content</c>).</summary>
    public string? ReasoningContent { get; init; }

    public JsonObject ToJson()
    {
        var o = new JsonObject { ["role"] = Role, ["content"] = Content };
        if (ToolCalls is not null) o["tool_calls"] = ToolCalls.DeepClone();
        if (ToolCallId is not null) o["tool_call_id"] = ToolCallId;
        if (Name is not null) o["name"] = Name;
        if (ReasoningContent is not null) o["reasoning_content"] = ReasoningContent;
        return o;
    }
}

/// <summary>The arguments of transformers' <c>apply_chat_template</c> besides the messages.</summary>
public sealed record ChatTemplateOptions
{
    /// <summary>End with the header that starts an assistant turn.</summary>
    public bool AddGenerationPrompt { get; init; }

    /// <summary>Leave the final message open (no end-of-turn), so generation continues it. Exclusive with <see cref="AddGenerationPrompt"/>.</summary>
    public bool ContinueFinalMessage { get; init; }

    /// <summary>Tool (function) JSON schemas, as templates expect them; null passes <c>tools=None</c>.</summary>
    public JsonArray? Tools { get; init; }

    /// <summary>Documents for retrieval-augmented templates (e.g. [{"title": ..., "text": ...}]).</summary>
    public JsonArray? Documents { get; init; }

    /// <summary>Extra template variables (e.g. <c>enable_thinking</c>: false, <c>date_string</c>).</summary>
    public IReadOnlyDictionary<string, JsonNode?>? Variables { get; init; }

    /// <summary>Which named template to use when the tokenizer has several; null picks "tool_use" when tools are given and
    /// it exists, else "default".</summary>
    public string? TemplateName { get; init; }
}

/// <summary>A rendered conversation and the character spans of its <c>{% generation %}</c> blocks (the assistant tokens).</summary>
public sealed record ChatTemplateRendering(string Text, IReadOnlyList<Range> AssistantSpans);

/// <summary>
/// A tokenizer's chat templates with the special tokens they see, rendered as transformers' <c>apply_chat_template</c>
/// renders them (<see cref="JinjaTemplate"/>). Thread-safe: templates are parsed once and rendering shares no state.
/// </summary>
public sealed partial class ChatTemplate
{
    private readonly IReadOnlyDictionary<string, string> _sources;
    private readonly ConcurrentDictionary<string, JinjaTemplate> _parsed = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _hasGenerationBlocks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object?> _specialTokens;
    private readonly string _origin;

    public ChatTemplate(IReadOnlyDictionary<string, string> templates, SpecialTokens? specialTokens = null,
        IReadOnlyList<string>? additionalSpecialTokens = null, string origin = "chat template")
    {
        ArgumentNullException.ThrowIfNull(templates);
        if (templates.Count == 0)
            throw new ArgumentException("no chat template given", nameof(templates));
        _sources = templates;
        _origin = origin;
        _specialTokens = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (specialTokens is not null)
        {
            void Add(string name, string? token)
            {
                if (token is not null) _specialTokens[name] = token;
            }
            Add("bos_token", specialTokens.Bos);
            Add("eos_token", specialTokens.Eos);
            Add("unk_token", specialTokens.Unk);
            Add("pad_token", specialTokens.Pad);
            Add("cls_token", specialTokens.Cls);
            Add("sep_token", specialTokens.Sep);
            Add("mask_token", specialTokens.Mask);
        }
        if (additionalSpecialTokens is { Count: > 0 })
            _specialTokens["additional_special_tokens"] = additionalSpecialTokens.Cast<object?>().ToList();
    }

    /// <summary>A single (default) template.</summary>
    public ChatTemplate(string template, SpecialTokens? specialTokens = null)
        : this(new Dictionary<string, string> { [TokenizerConfig.DefaultTemplateName] = template }, specialTokens)
    {
    }

    /// <summary>The chat templates of a model folder (see <see cref="TokenizerConfig"/>) or Hub id (see
    /// <see cref="Hub.PretrainedPath"/>); throws when it has none.</summary>
    public static ChatTemplate FromPretrained(string directory) =>
        FromConfig(TokenizerConfig.Load(Hub.PretrainedPath.Resolve(directory, Hub.HubFileSelection.Tokenizer)));

    public static ChatTemplate FromConfig(TokenizerConfig config) =>
        config.ChatTemplates.Count == 0
            ? throw new InvalidDataException($"{config.Directory}: no chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja)")
            : new ChatTemplate(config.ChatTemplates, config.SpecialTokens, config.AdditionalSpecialTokens, config.Directory);

    /// <summary>The template names (a single unnamed template is "default").</summary>
    public IReadOnlyCollection<string> Names => _sources.Keys.ToList();

    /// <summary>The source of the template <paramref name="options"/> select.</summary>
    public string GetSource(ChatTemplateOptions? options = null) => _sources[SelectName(options ?? new ChatTemplateOptions())];

    /// <summary>True when the selected template marks assistant text with <c>{% generation %}</c> blocks.</summary>
    public bool HasGenerationBlocks(ChatTemplateOptions? options = null) =>
        _hasGenerationBlocks.GetOrAdd(SelectName(options ?? new ChatTemplateOptions()), name => GenerationTag().IsMatch(_sources[name]));

    // Asked once per training example by SFT: scanned once per template.
    [System.Text.RegularExpressions.GeneratedRegex(@"\{%-?\s*generation\s*-?%\}")]
    private static partial System.Text.RegularExpressions.Regex GenerationTag();

    public string ApplyChatTemplate(IEnumerable<ChatMessage> messages, ChatTemplateOptions? options = null) =>
        Render(messages, options).Text;

    public string ApplyChatTemplate(JsonArray messages, ChatTemplateOptions? options = null) => Render(messages, options).Text;

    public ChatTemplateRendering Render(IEnumerable<ChatMessage> messages, ChatTemplateOptions? options = null) =>
        Render(new JsonArray(messages.Select(m => (JsonNode?)m.ToJson()).ToArray()), options);

    /// <summary>Renders a conversation (a JSON list of message objects). Template errors name the template's line and column;
    /// a template's own <c>raise_exception</c> surfaces as <see cref="TemplateRaisedException"/>.</summary>
    public ChatTemplateRendering Render(JsonArray messages, ChatTemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        options ??= new ChatTemplateOptions();
        if (options.AddGenerationPrompt && options.ContinueFinalMessage)
            throw new ArgumentException("AddGenerationPrompt and ContinueFinalMessage cannot both be set: one starts a new assistant turn, the other continues the last message");
        var name = SelectName(options);
        var template = _parsed.GetOrAdd(name, n =>
        {
            try
            {
                return JinjaTemplate.Parse(_sources[n]);
            }
            catch (JinjaException e)
            {
                throw new JinjaException($"{_origin}, template '{n}': {e.Reason}", e.Line, e.Column, e);
            }
        });

        var variables = new Dictionary<string, object?>(_specialTokens, StringComparer.Ordinal)
        {
            ["messages"] = JinjaValues.FromJson(messages),
            ["tools"] = options.Tools is null ? null : JinjaValues.FromJson(options.Tools),
            ["documents"] = options.Documents is null ? null : JinjaValues.FromJson(options.Documents),
            ["add_generation_prompt"] = options.AddGenerationPrompt,
        };
        if (options.Variables is not null)
            foreach (var (key, value) in options.Variables)
                variables[key] = JinjaValues.FromJson(value);

        var rendering = template.Render(variables);
        var text = rendering.Text;
        if (options.ContinueFinalMessage)
            text = CutAfterFinalMessage(text, messages);
        var spans = rendering.GenerationSpans
            .Where(s => s.Start.Value < text.Length)
            .Select(s => s.Start.Value..Math.Min(s.End.Value, text.Length))
            .ToList();
        return new ChatTemplateRendering(text, spans);
    }

    private string SelectName(ChatTemplateOptions options)
    {
        if (options.TemplateName is { } requested)
            return _sources.ContainsKey(requested) ? requested
                : throw new ArgumentException($"{_origin} has no chat template named '{requested}' (it has: {string.Join(", ", _sources.Keys)})");
        if (options.Tools is not null && _sources.ContainsKey("tool_use"))
            return "tool_use";
        if (_sources.ContainsKey(TokenizerConfig.DefaultTemplateName))
            return TokenizerConfig.DefaultTemplateName;
        if (_sources.Count == 1)
            return _sources.Keys.First();
        throw new ArgumentException($"{_origin} has several chat templates and none named 'default'; choose one of: {string.Join(", ", _sources.Keys)}");
    }

    /// <summary>transformers' continue_final_message: cut the rendering right after the final message's content.</summary>
    private static string CutAfterFinalMessage(string rendered, JsonArray messages)
    {
        if (messages.Count == 0 || messages[^1] is not JsonObject last)
            throw new ArgumentException("ContinueFinalMessage needs a final message to continue");
        string? final = null;
        switch (last["content"])
        {
            case JsonValue v when v.TryGetValue<string>(out var s):
                final = s;
                break;
            case JsonArray blocks:
                for (var i = blocks.Count - 1; i >= 0 && final is null; i--)
                    if (blocks[i] is JsonObject block && block["text"] is JsonValue t && t.TryGetValue<string>(out var text))
                        final = text;
                if (final is null)
                    throw new ArgumentException("ContinueFinalMessage is set but the final message has no text to continue");
                break;
            default:
                throw new ArgumentException("ContinueFinalMessage needs the final message's content to be text");
        }
        var stripped = JinjaRenderer.PyStrip(final, null, true, true);
        var location = rendered.LastIndexOf(stripped, StringComparison.Ordinal);
        if (location < 0)
            throw new ArgumentException("ContinueFinalMessage is set but the final message does not appear in the chat after applying the chat template (the template may alter it); continue without it");
        var leftStripped = JinjaRenderer.PyStrip(final, null, true, false);
        // As transformers: when the template kept the message's trailing spacing, keep it; else cut after the stripped text.
        var keepsSpacing = rendered.Substring(location, Math.Min(leftStripped.Length, rendered.Length - location)) == final;
        return rendered[..(location + (keepsSpacing ? leftStripped.Length : stripped.Length))];
    }
}
