using SharpTune.Tokenizers;

namespace SharpTune.Generation;

/// <summary>
/// Prompt text ↔ token ids for generation: the model folder's tokenizer, plus <c>add_bos_token</c> from
/// tokenizer_config.json, which transformers' Llama tokenizers honour even when tokenizer.json has no
/// post-processor adding BOS (stories260K's case). Decoding skips special tokens.
/// </summary>
public sealed class PromptTokenizer
{
    private PromptTokenizer(Tokenizer tokenizer, bool addBos)
    {
        Tokenizer = tokenizer;
        AddBos = addBos;
    }

    public Tokenizer Tokenizer { get; }

    /// <summary>True when prompts must start with the BOS id.</summary>
    public bool AddBos { get; }

    public static PromptTokenizer FromPretrained(string directory)
    {
        directory = Hub.PretrainedPath.Resolve(directory, Hub.HubFileSelection.Tokenizer);
        var tokenizer = AutoTokenizer.FromPretrained(directory);
        var addBos = TokenizerConfig.Load(directory).AddBosToken;
        if (addBos && tokenizer.BosTokenId is null)
            throw new InvalidDataException($"{Path.Combine(directory, "tokenizer_config.json")}: add_bos_token is true but the tokenizer has no BOS token");
        return new PromptTokenizer(tokenizer, addBos);
    }

    public IReadOnlyList<long> Encode(string text)
    {
        var ids = Tokenizer.EncodeToIds(text).Select(id => (long)id).ToList();
        if (AddBos && (ids.Count == 0 || ids[0] != Tokenizer.BosTokenId))
            ids.Insert(0, Tokenizer.BosTokenId!.Value);
        return ids;
    }

    public string Decode(IReadOnlyList<long> ids) => Tokenizer.Decode(ids.Select(id => checked((int)id)));
}
