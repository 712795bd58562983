using Microsoft.Extensions.AI;
using SharpTune.Generation;

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
    /// <summary>The model's chat format: <see cref="PlainChatFormat"/> until chat templates can be rendered.</summary>
    public static IChatFormat For(string modelDirectory, PromptTokenizer tokenizer) => PlainChatFormat.Instance;

    /// <summary>The conversation's prompt ids.</summary>
    public static IReadOnlyList<long> EncodeChat(this IChatFormat format, IReadOnlyList<ChatMessage> messages, PromptTokenizer tokenizer)
    {
        var text = format.Format(messages);
        return format.RendersSpecialTokens
            ? tokenizer.Tokenizer.EncodeToIds(text, addSpecialTokens: false).Select(id => (long)id).ToList()
            : tokenizer.Encode(text);
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
