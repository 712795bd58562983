using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Cli.Infrastructure;
using SharpTune.Tokenizers.ChatTemplates;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune chat-template</c>: renders a conversation with a tokenizer's chat template and prints exactly the
/// rendered text (UTF-8, no newline added), as transformers' <c>apply_chat_template(..., tokenize=False)</c> returns it.</summary>
public static class ChatTemplateCommand
{
    public static Command Create()
    {
        var tokenizerOption = new Option<string>("--tokenizer")
        {
            Description = "Model or tokenizer folder (tokenizer_config.json's chat_template, chat_template.jinja, additional_chat_templates/)",
            Required = true,
        };
        var messagesOption = new Option<string>("--messages")
        {
            Description = "JSON file: a list of messages [{\"role\": ..., \"content\": ...}, ...] (or an object with \"messages\")",
            Required = true,
        };
        var command = new Command("chat-template",
            "Render a conversation with the tokenizer's chat template (Jinja, as transformers' apply_chat_template) and print " +
            "the text exactly, with no newline added.");
        command.Options.Add(tokenizerOption);
        command.Options.Add(messagesOption);
        var options = ChatCliOptions.AddTo(command);
        command.SetAction(parseResult =>
        {
            GlobalOptions.Apply(parseResult);
            var template = ChatTemplate.FromPretrained(CliPaths.ExistingDirectory(HubModels.Resolve(parseResult.GetValue(tokenizerOption)!, Hub.HubFileSelection.Tokenizer), "--tokenizer"));
            var messages = ChatCliOptions.ReadMessages(parseResult.GetValue(messagesOption)!);
            var text = template.ApplyChatTemplate(messages, options.Read(parseResult));
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(new UTF8Encoding(false).GetBytes(text));
            return ExitCodes.Success;
        });
        return command;
    }
}

/// <summary>The chat-template options shared by chat-template, generate --chat and tokenize --chat.</summary>
public sealed class ChatCliOptions
{
    private Option<bool> AddGenerationPrompt { get; } = new("--add-generation-prompt") { Description = "End with the header that starts the assistant's turn" };
    private Option<bool> ContinueFinalMessage { get; } = new("--continue-final-message") { Description = "Leave the final message open so that generation continues it" };
    private Option<string?> Tools { get; } = new("--tools") { Description = "JSON file: a list of tool (function) schemas passed to the template as `tools`" };
    private Option<string?> Documents { get; } = new("--documents") { Description = "JSON file: a list of documents passed to the template as `documents`" };
    private Option<string[]> Variables { get; } = new("--var")
    {
        Description = "Extra template variable as name=json-value, e.g. --var enable_thinking=false (repeatable)",
        AllowMultipleArgumentsPerToken = false,
    };
    private Option<string?> TemplateName { get; }

    private ChatCliOptions(string templateOptionName) =>
        TemplateName = new Option<string?>(templateOptionName) { Description = "Which named chat template to use when the tokenizer has several (e.g. tool_use)" };

    /// <summary>Adds the options; the template-name option is <paramref name="templateOptionName"/> (commands where --template means something else use --chat-template-name).</summary>
    public static ChatCliOptions AddTo(Command command, bool includeGenerationPrompt = true, string templateOptionName = "--template")
    {
        var options = new ChatCliOptions(templateOptionName);
        if (includeGenerationPrompt)
            command.Options.Add(options.AddGenerationPrompt);
        command.Options.Add(options.ContinueFinalMessage);
        command.Options.Add(options.Tools);
        command.Options.Add(options.Documents);
        command.Options.Add(options.Variables);
        command.Options.Add(options.TemplateName);
        return options;
    }

    public ChatTemplateOptions Read(ParseResult parseResult, bool? addGenerationPrompt = null)
    {
        var variables = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var assignment in parseResult.GetValue(Variables) ?? [])
        {
            var equals = assignment.IndexOf('=');
            if (equals <= 0)
                throw new UsageException($"--var '{assignment}': expected name=json-value");
            var name = assignment[..equals];
            try
            {
                variables[name] = JsonNode.Parse(assignment[(equals + 1)..]);
            }
            catch (JsonException e)
            {
                throw new UsageException($"--var {name}: '{assignment[(equals + 1)..]}' is not a JSON value (strings need quotes: {name}='\"text\"'): {e.Message}");
            }
        }
        return new ChatTemplateOptions
        {
            AddGenerationPrompt = addGenerationPrompt ?? parseResult.GetValue(AddGenerationPrompt),
            ContinueFinalMessage = parseResult.GetValue(ContinueFinalMessage),
            Tools = parseResult.GetValue(Tools) is { } tools ? ReadList(tools, "--tools") : null,
            Documents = parseResult.GetValue(Documents) is { } documents ? ReadList(documents, "--documents") : null,
            Variables = variables,
            TemplateName = parseResult.GetValue(TemplateName),
        };
    }

    /// <summary>A messages file: a JSON list of messages, or an object whose "messages" is one.</summary>
    public static JsonArray ReadMessages(string path)
    {
        var node = ReadJson(path, "--messages");
        var list = node switch
        {
            JsonArray a => a,
            JsonObject o when o["messages"] is JsonArray a => a,
            _ => throw new UsageException($"--messages {path}: expected a JSON list of messages (or an object with \"messages\")"),
        };
        for (var i = 0; i < list.Count; i++)
            if (list[i] is not JsonObject message || message["role"] is not JsonValue)
                throw new UsageException($"--messages {path}: message {i} is not an object with a \"role\"");
        return list;
    }

    private static JsonArray ReadList(string path, string option) =>
        ReadJson(path, option) as JsonArray ?? throw new UsageException($"{option} {path}: expected a JSON list");

    private static JsonNode? ReadJson(string path, string option)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{option}: file not found: {path}", path);
        try
        {
            return JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new UsageException($"{option} {path}: invalid JSON ({e.Message})");
        }
    }
}

internal static class CliPaths
{
    public static string ExistingDirectory(string path, string option) =>
        Directory.Exists(path) ? path : throw new DirectoryNotFoundException($"{option}: folder not found: {path}");
}
