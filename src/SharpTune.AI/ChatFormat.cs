using Microsoft.Extensions.AI;
using SharpTune.Generation;
using SharpTune.Tokenizers;
using SharpTune.Tokenizers.ChatTemplates;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = SharpTune.Tokenizers.ChatTemplates.ChatMessage;

namespace SharpTune.AI;

/// <summary>Turns a conversation into the prompt text the model continues with the assistant's reply.</summary>
public interface IChatFormat
{
    string Format(IReadOnlyList<ChatMessage> messages);

    /// <summary>True when the formatted text already holds the special tokens (BOS...) a chat template writes, so
    /// encoding must not add them again.</summary>
    bool RendersSpecialTokens => false;
}

/// <summary>The chat format of a model folder.</summary>
public static class ChatFormats
{
    /// <summary>The model's chat template (tokenizer_config.json's chat_template or chat_template.jinja) when it has one,
    /// else <see cref="PlainChatFormat"/>.</summary>
    public static IChatFormat For(string modelDirectory)
    {
        var config = TokenizerConfig.Load(modelDirectory);
        return config.ChatTemplates.Count > 0 ? new TemplateChatFormat(ChatTemplate.FromConfig(config)) : PlainChatFormat.Instance;
    }

    /// <summary>The conversation's prompt ids.</summary>
    public static IReadOnlyList<long> EncodeChat(this IChatFormat format, IReadOnlyList<ChatMessage> messages, PromptTokenizer tokenizer)
    {
        var text = format.Format(messages);
        return format.RendersSpecialTokens
            ? tokenizer.Tokenizer.EncodeToIds(text, addSpecialTokens: false).Select(id => (long)id).ToList()
            : tokenizer.Encode(text);
    }
}

/// <summary>A model's Jinja chat template, rendered as transformers' <c>apply_chat_template(add_generation_prompt=True)</c>;
/// the text holds the template's special tokens, so it is encoded without adding more (as transformers does).</summary>
public sealed class TemplateChatFormat(ChatTemplate template) : IChatFormat
{
    public ChatTemplate Template { get; } = template;

    public bool RendersSpecialTokens => true;

    public string Format(IReadOnlyList<ChatMessage> messages)
    {
        if (messages.Count == 0)
            throw new ArgumentException("the conversation has no messages");
        return Template.ApplyChatTemplate(messages.Select(m => new TemplateMessage(m.Role.Value, m.Text)),
            new ChatTemplateOptions { AddGenerationPrompt = true });
    }
}

/// <summary>
/// For models without a chat template: one "Role: text" paragraph per message, then "Assistant:" for the reply
/// (the convention base models continue most naturally).
/// </summary>
public sealed class PlainChatFormat : IChatFormat
{
    public static PlainChatFormat Instance { get; } = new();

    public string Format(IReadOnlyList<ChatMessage> messages)
    {
        if (messages.Count == 0)
            throw new ArgumentException("the conversation has no messages");
        var prompt = new System.Text.StringBuilder();
        foreach (var message in messages)
            prompt.Append(RoleName(message.Role)).Append(": ").Append(message.Text).Append("\n\n");
        return prompt.Append("Assistant:").ToString();
    }

    private static string RoleName(ChatRole role) =>
        role == ChatRole.System ? "System" : role == ChatRole.User ? "User" : role == ChatRole.Assistant ? "Assistant" : role == ChatRole.Tool ? "Tool"
        : role.Value.Length > 0 ? char.ToUpperInvariant(role.Value[0]) + role.Value[1..] : "User";
}
