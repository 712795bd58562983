using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Cli.Infrastructure;
using SharpTune.Data;
using SharpTune.IO;
using SharpTune.Hub;
using SharpTune.Tokenizers;
using SharpTune.Tokenizers.ChatTemplates;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune tokenize</c>: JSONL texts (or text pairs) in, JSONL encodings out, with Hugging Face semantics.</summary>
public static class TokenizeCommand
{
    public static Command Create()
    {
        var tokenizerOption = new Option<string>("--tokenizer")
        {
            Description = "Tokenizer: a tokenizer.json, tokenizer.model, vocab.txt, vocab.json (+merges.txt), tokenizer.bin, or a model folder",
            Required = true,
        };
        var inputOption = new Option<string>("--input") { Description = "JSONL input: one {\"text\": ...} or {\"text\": ..., \"text_pair\": ...} per line", Required = true };
        var outputOption = new Option<string>("--output") { Description = "JSONL output (- for standard output): {\"ids\", \"tokens\", \"type_ids\", \"attention_mask\", \"offsets\"} per line", Required = true };
        var maxLengthOption = new Option<int?>("--max-length") { Description = "Maximum length in tokens (special tokens included) for --truncation and --padding max_length" };
        var truncationOption = new Option<bool>("--truncation") { Description = "Truncate to --max-length (longest_first)" };
        var paddingOption = new Option<string?>("--padding") { Description = "Pad to the longest encoding of the input (longest) or to --max-length (max_length)" };
        paddingOption.AcceptOnlyFromAmong("longest", "max_length");
        var noSpecialOption = new Option<bool>("--no-special-tokens") { Description = "Do not add special tokens such as [CLS]/[SEP] or <s>" };
        var chatOption = new Option<bool>("--chat")
        {
            Description = "Each input line is {\"messages\": [...]}: render it with the tokenizer's chat template, then tokenize without adding " +
                          "special tokens (the template writes them), as transformers' apply_chat_template(tokenize=True)",
        };

        var command = new Command("tokenize",
            "Tokenize a JSONL file with a Hugging Face compatible tokenizer. Offsets are counted in Unicode code points " +
            "of the input text, as in Hugging Face's Python API.");
        foreach (var option in new Option[] { tokenizerOption, inputOption, outputOption, maxLengthOption, truncationOption, paddingOption, noSpecialOption, chatOption })
            command.Options.Add(option);
        var chatOptions = ChatCliOptions.AddTo(command);
        command.SetAction(parseResult =>
        {
            GlobalOptions.Apply(parseResult);
            var input = parseResult.GetValue(inputOption)!;
            var output = parseResult.GetValue(outputOption)!;
            var maxLength = parseResult.GetValue(maxLengthOption);
            var truncation = parseResult.GetValue(truncationOption);
            var padding = parseResult.GetValue(paddingOption);
            if (maxLength is <= 0)
                throw new UsageException($"--max-length must be positive (got {maxLength})");
            if (truncation && maxLength is null)
                throw new UsageException("--truncation needs --max-length");
            if (padding == "max_length" && maxLength is null)
                throw new UsageException("--padding max_length needs --max-length");
            if (!File.Exists(input))
                throw new FileNotFoundException($"Input file not found: {input}", input);

            var tokenizerPath = HubModels.Resolve(parseResult.GetValue(tokenizerOption)!, HubFileSelection.Tokenizer);
            var tokenizer = AutoTokenizer.FromPretrained(tokenizerPath);
            var chat = parseResult.GetValue(chatOption);
            var options = new EncodeOptions
            {
                Truncation = truncation ? new TruncationOptions(maxLength!.Value) : null,
                Padding = padding is null ? null : tokenizer.PaddingTo(padding == "max_length" ? maxLength : null),
                AddSpecialTokens = !parseResult.GetValue(noSpecialOption) && !chat,
            };
            var inputs = chat ? RenderConversations(input, tokenizerPath, chatOptions.Read(parseResult)) : ReadInputs(input);
            // One batch for the whole file: padding "longest" pads to the longest encoding of the file.
            var encodings = tokenizer.EncodeBatch(inputs, options);
            WriteJsonLines(output, encodings);
            // With --output - the encodings are standard output; the summary goes to standard error.
            var summary = AtomicFile.IsStream(output) ? Console.Error : Console.Out;
            summary.WriteLine($"Tokenized {inputs.Count} texts into {encodings.Sum(e => e.AttentionMask.Sum())} tokens → {output}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static List<(string, string?)> RenderConversations(string path, string tokenizerPath, ChatTemplateOptions options)
    {
        var template = ChatTemplate.FromPretrained(Directory.Exists(tokenizerPath) ? tokenizerPath : Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!);
        var inputs = new List<(string, string?)>();
        foreach (var (lineNumber, record) in JsonLines.ReadObjects(path, allowEmpty: true))
        {
            var messages = record["messages"] as JsonArray ?? throw new InvalidDataException($"{path}:{lineNumber}: --chat expects an object with a \"messages\" list");
            try
            {
                inputs.Add((template.ApplyChatTemplate(messages, options), null));
            }
            catch (Exception e) when (e is TemplateRaisedException or JinjaException or ArgumentException)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: {e.Message}", e);
            }
        }
        return inputs;
    }

    /// <summary>One input per line; a blank line between records is refused, since output line N answers input line N.</summary>
    private static List<(string, string?)> ReadInputs(string path)
    {
        SharpTune.Data.TextFiles.EnsureUtf8(path);
        var inputs = new List<(string, string?)>();
        var lineNumber = 0;
        var blankLine = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                blankLine = blankLine == 0 ? lineNumber : blankLine;
                continue;
            }
            if (blankLine != 0)
                throw new InvalidDataException($"{path}:{blankLine}: blank line; give one JSON object per line (output line N is input line N's encoding)");
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: not valid JSON ({e.Message})");
            }
            var text = node is JsonObject record && record["text"] is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new InvalidDataException($"{path}:{lineNumber}: expected an object with a string \"text\", found {Describe(node)}");
            var pair = record["text_pair"] is JsonValue p && p.TryGetValue<string>(out var t) ? t : null;
            inputs.Add((text, pair));
        }
        return inputs;
    }

    private static string Describe(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject => "an object without it",
        _ => $"a JSON {node.GetValueKind().ToString().ToLowerInvariant()}",
    };

    private static void WriteJsonLines(string path, IReadOnlyList<TokenEncoding> encodings) =>
        AtomicFile.Write(path, stream =>
        {
            using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            foreach (var encoding in encodings)
            {
                writer.WriteStartObject();
                WriteArray(writer, "ids", encoding.Ids);
                writer.WriteStartArray("tokens");
                foreach (var token in encoding.Tokens)
                    writer.WriteStringValue(token);
                writer.WriteEndArray();
                WriteArray(writer, "type_ids", encoding.TypeIds);
                WriteArray(writer, "attention_mask", encoding.AttentionMask);
                writer.WriteStartArray("offsets");
                foreach (var (start, end) in encoding.Offsets)
                {
                    writer.WriteStartArray();
                    writer.WriteNumberValue(start);
                    writer.WriteNumberValue(end);
                    writer.WriteEndArray();
                }
                writer.WriteEndArray();
                writer.WriteEndObject();
                writer.Flush();
                stream.WriteByte((byte)'\n');
                writer.Reset(); // one JSON document per line
            }
        });

    private static void WriteArray(Utf8JsonWriter writer, string name, IReadOnlyList<int> values)
    {
        writer.WriteStartArray(name);
        foreach (var value in values)
            writer.WriteNumberValue(value);
        writer.WriteEndArray();
    }
}
